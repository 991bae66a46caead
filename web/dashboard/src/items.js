// What the dashboard shows of an item, in one place: the fields every view asks for
// (ITEM_FIELDS, spread into each query and subscription by queries.js) and the item table's
// columns, in order. A new figure of the API (e.g. `incoming`, once the service has it) is one
// field here and one column below.
import { gql } from '@urql/core';

export const ITEM_FIELDS = gql`
  fragment ItemFields on InventoryItem {
    id
    sku
    warehouseId
    onHand
    allocated
    available
    incoming
    reorderThreshold
    reorderQuantity
    lowStock
    active
    version
    updatedAt
  }
`;

/** The table's columns: `key` is the item field, `numeric` right-aligns and sorts as numbers. */
export const COLUMNS = [
  { key: 'sku', label: 'SKU' },
  { key: 'onHand', label: 'On hand', numeric: true },
  { key: 'allocated', label: 'Allocated', numeric: true },
  { key: 'available', label: 'Available', numeric: true },
  { key: 'incoming', label: 'Incoming', numeric: true },
  { key: 'reorderThreshold', label: 'Reorder at', numeric: true },
  { key: 'lowStock', label: 'Stock' },
];

/** Of two copies of one item (a fetched page, a live update), the later one. */
export const later = (a, b) => (!a ? b : !b ? a : b.version >= a.version ? b : a);
