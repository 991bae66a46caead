// Every GraphQL operation the dashboard sends. Only the public API, as any client would.
import { gql } from '@urql/core';
import { ITEM_FIELDS } from './items.js';

export const VIEWER = gql`
  query Viewer {
    viewer { name role anonymous warehouseIds }
  }
`;

export const WAREHOUSES = gql`
  query Warehouses {
    warehouses(first: 500) { edges { node { id code name active } } }
  }
`;

export const SERVICE_STATUS = gql`
  query ServiceStatus {
    serviceStatus { projectionLagSeconds outboxDepth outboxOldestAgeSeconds }
  }
`;

export const ITEMS = gql`
  query Items($warehouseId: ID!, $lowStockOnly: Boolean!, $first: Int!, $after: String) {
    inventoryItems(warehouseId: $warehouseId, lowStockOnly: $lowStockOnly, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { ...ItemFields } }
    }
  }
  ${ITEM_FIELDS}
`;

export const ITEM_CHANGED = gql`
  subscription ItemChanged($warehouseId: ID, $itemId: ID) {
    inventoryItemChanged(warehouseId: $warehouseId, itemId: $itemId) { ...ItemFields }
  }
  ${ITEM_FIELDS}
`;

export const LOW_STOCK_ALERTS = gql`
  subscription LowStockAlerts {
    lowStockAlerts { id itemId sku warehouseId available threshold suggestedReorderQuantity occurredAt }
  }
`;

export const ALLOCATION_CHANGED = gql`
  subscription AllocationChanged {
    allocationChanged { id itemId status }
  }
`;

const ALLOCATION_FIELDS = gql`
  fragment AllocationFields on Allocation {
    id orderId quantity status cancelReason expiresAt createdAt updatedAt version
  }
`;

// The item page in one request: the item and its allocations, its stock history (for the
// chart), the daily movements and the raw event trail (the latest 100 of each).
export const ITEM_PAGE = gql`
  query ItemPage($id: ID!, $from: NaiveDate!, $to: NaiveDate!) {
    inventoryItem(id: $id) {
      ...ItemFields
      productId
      createdAt
      warehouse { id code name }
      allocations(last: 100) { totalCount edges { node { ...AllocationFields } } }
      transfers(last: 20) {
        totalCount
        edges { node { id status fromItemId toItemId fromWarehouseId toWarehouseId quantity quantityReceived shortfall reference createdAt } }
      }
    }
    inventoryHistory(itemId: $id, last: 500) {
      totalCount
      edges { node { id sequenceNumber reason delta quantityAfter reference actor occurredAt } }
    }
    stockMovementReport(itemId: $id, from: $from, to: $to) {
      rows { id day received removed allocated released fulfilled net }
    }
    events(aggregateId: $id, last: 100) {
      totalCount
      edges { node { eventId sequenceNumber eventType data occurredAt metadata { actor correlationId } } }
    }
  }
  ${ITEM_FIELDS}
  ${ALLOCATION_FIELDS}
`;

const PAYLOAD_ITEM = `inventoryItem { ...ItemFields } userErrors { field message code }`;

export const ADJUST = gql`
  mutation Adjust($input: InventoryAdjustInput!) {
    inventoryAdjust(input: $input) { ${PAYLOAD_ITEM} }
  }
  ${ITEM_FIELDS}
`;

const ALLOCATION_PAYLOAD = `allocation { ...AllocationFields } ${PAYLOAD_ITEM}`;

export const ALLOCATE = gql`
  mutation Allocate($input: AllocationCreateInput!) {
    allocationCreate(input: $input) { ${ALLOCATION_PAYLOAD} }
  }
  ${ITEM_FIELDS}
  ${ALLOCATION_FIELDS}
`;

export const CONFIRM = gql`
  mutation Confirm($input: AllocationConfirmInput!) {
    allocationConfirm(input: $input) { ${ALLOCATION_PAYLOAD} }
  }
  ${ITEM_FIELDS}
  ${ALLOCATION_FIELDS}
`;

export const CANCEL = gql`
  mutation Cancel($input: AllocationCancelInput!) {
    allocationCancel(input: $input) { ${ALLOCATION_PAYLOAD} }
  }
  ${ITEM_FIELDS}
  ${ALLOCATION_FIELDS}
`;

export const FULFIL = gql`
  mutation Fulfil($input: AllocationFulfillInput!) {
    allocationFulfill(input: $input) { ${ALLOCATION_PAYLOAD} }
  }
  ${ITEM_FIELDS}
  ${ALLOCATION_FIELDS}
`;

/** The adjustment reasons the API takes (AdjustmentReason), with the sign each needs. */
export const REASONS = [
  ['RECEIVED', 'Received (+)'],
  ['RETURNED', 'Returned (+)'],
  ['SOLD', 'Sold (−)'],
  ['DAMAGED', 'Damaged (−)'],
  ['CORRECTION', 'Correction (±)'],
  ['OTHER', 'Other (±)'],
];
