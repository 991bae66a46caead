#!/usr/bin/env python3
"""Does a restored service answer like the original? (issue 16)

Asks two running services (the original store's and the restored one's) the same GraphQL
queries for a random sample of items (half of it among the items with allocations) and
compares the answers exactly: the item (onHand, allocated, available, version), its first 50
history entries, its allocations, the stock movement report of its warehouse, and its events
(count and last sequence number).

Usage: archive-compare.py compare ORIGINAL_URL RESTORED_URL [--sample 50] [--seed N]
Prints one line per mismatch and a JSON summary line last; exits 1 on any mismatch or error.

A synthetic backup holds only stock changes, so `archive-compare.py allocate URL --count N`
first gives the original N allocations over random items (left created, confirmed, fulfilled
or cancelled in turn), so that allocations and fulfilments are compared too.

Standard library only (urllib); anonymous callers on loopback are admins, so no key is needed.
"""

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request

ITEMS = """query($after: String) {
  inventoryItems(first: 500, after: $after) {
    edges { node { id warehouseId } }
    pageInfo { hasNextPage endCursor }
  }
}"""

ALLOCATED = """query($after: String) {
  allocations(first: 500, after: $after) {
    edges { node { itemId } }
    pageInfo { hasNextPage endCursor }
  }
}"""

ITEM = """query($id: ID!) {
  inventoryItem(id: $id) { id sku warehouseId onHand allocated available version }
}"""

HISTORY = """query($id: ID!) {
  inventoryHistory(itemId: $id, first: 50) {
    totalCount
    edges { node { id sequenceNumber reason delta quantityAfter reference actor
                   correlationId occurredAt } }
  }
}"""

ALLOCATIONS = """query($id: ID!) {
  allocations(itemId: $id, first: 50) {
    totalCount
    edges { node { id orderId itemId warehouseId quantity status cancelReason expiresAt
                   version createdAt updatedAt } }
  }
}"""

REPORT = """query($warehouse: ID!) {
  stockMovementReport(warehouseId: $warehouse) {
    rows { id itemId sku warehouseId day received removed allocated released fulfilled net }
    totals { received removed allocated released fulfilled net }
  }
}"""

EVENTS = """query($id: ID!) {
  events(aggregateId: $id, last: 1) {
    totalCount
    edges { node { sequenceNumber eventType } }
  }
}"""


CREATE = """mutation($input: AllocationCreateInput!) {
  allocationCreate(input: $input) { allocation { id } userErrors { code message } }
}"""

FOLLOW_UP = {
    "confirm": """mutation($id: ID!) {
      allocationConfirm(input: {id: $id}) { userErrors { code message } }
    }""",
    "fulfil": """mutation($id: ID!) {
      allocationFulfill(input: {id: $id}) { userErrors { code message } }
    }""",
    "cancel": """mutation($id: ID!) {
      allocationCancel(input: {id: $id, reason: "archive-compare"}) { userErrors { code message } }
    }""",
}

# What happens to the i-th allocation after it is created, in turn.
LIVES = [[], ["confirm"], ["confirm", "fulfil"], ["cancel"]]


def ask(url, query, variables):
    """The `data` of one GraphQL request; raises on transport or GraphQL errors."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    for attempt in range(20):
        request = urllib.request.Request(
            url.rstrip("/") + "/graphql",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 429:  # the rate limit: wait as told, then ask again
                time.sleep(float(error.headers.get("Retry-After") or 1))
                continue
            raise RuntimeError(f"{url}: HTTP {error.code}: {error.read()[:500]!r}") from error
        if answer.get("errors"):
            raise RuntimeError(f"{url}: {json.dumps(answer['errors'])[:500]}")
        return answer["data"]
    raise RuntimeError(f"{url}: still rate-limited after {attempt + 1} attempts")


def first_difference(a, b, path="$"):
    """Where two JSON values first differ, as a path and the two values there."""
    if type(a) is not type(b):
        return path, a, b
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}", a.get(key, "<absent>"), b.get(key, "<absent>")
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        for index, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{index}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{path}.length", len(a), len(b)
        return None
    return None if a == b else (path, a, b)


def all_items(url):
    items, after = [], None
    while True:
        page = ask(url, ITEMS, {"after": after})["inventoryItems"]
        items.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return items
        after = page["pageInfo"]["endCursor"]


def mutate(url, query, variables, field):
    answer = ask(url, query, variables)[field]
    if answer["userErrors"]:
        raise RuntimeError(f"{field} {variables}: {answer['userErrors']}")
    return answer


def allocate(args, seed):
    items = all_items(args.url)
    rng = random.Random(seed)
    lives = {" ".join(life) or "created": 0 for life in LIVES}
    for i in range(args.count):
        item = rng.choice(items)
        created = mutate(args.url, CREATE, {"input": {
            "orderId": f"archive-compare-{seed}-{i}",
            "itemId": item["id"],
            "quantity": rng.randint(1, 5),
        }}, "allocationCreate")
        life = LIVES[i % len(LIVES)]
        for step in life:
            field = {"confirm": "allocationConfirm", "fulfil": "allocationFulfill",
                     "cancel": "allocationCancel"}[step]
            mutate(args.url, FOLLOW_UP[step], {"id": created["allocation"]["id"]}, field)
        lives[" ".join(life) or "created"] += 1
    print(json.dumps({"allocations": args.count, "seed": seed, "lives": lives}))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare_args = commands.add_parser("compare", help="compare two services' answers")
    compare_args.add_argument("original")
    compare_args.add_argument("restored")
    compare_args.add_argument("--sample", type=int, default=50)
    compare_args.add_argument("--seed", type=int, default=None)
    allocate_args = commands.add_parser("allocate", help="give the original allocations")
    allocate_args.add_argument("url")
    allocate_args.add_argument("--count", type=int, default=200)
    allocate_args.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    if args.command == "allocate":
        return allocate(args, seed)
    started = time.monotonic()

    items = all_items(args.original)
    if not items:
        print("archive-compare: the original store has no items", file=sys.stderr)
        return 1
    # Half the sample from the items with allocations (few among many otherwise), half from
    # all items.
    allocated, after = set(), None
    while True:
        page = ask(args.original, ALLOCATED, {"after": after})["allocations"]
        allocated.update(edge["node"]["itemId"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    rng = random.Random(seed)
    with_allocations = [item for item in items if item["id"] in allocated]
    sample = rng.sample(with_allocations, min(args.sample // 2, len(with_allocations)))
    chosen = {item["id"] for item in sample}
    rest = [item for item in items if item["id"] not in chosen]
    sample += rng.sample(rest, min(args.sample - len(sample), len(rest)))

    compared, mismatches, errors = 0, [], []
    nonempty = {"history": 0, "allocations": 0, "reportRows": 0, "events": 0}
    reports = {}  # one report per warehouse and service (items share warehouses)

    def both(name, query, variables):
        nonlocal compared
        try:
            a = ask(args.original, query, variables)
            b = ask(args.restored, query, variables)
        except RuntimeError as error:
            errors.append(f"{name} {variables}: {error}")
            return None
        compared += 1
        found = first_difference(a, b)
        if found:
            where, x, y = found
            mismatches.append(f"{name} {variables}: at {where}: original {x!r}, restored {y!r}")
            print(f"archive-compare: MISMATCH {mismatches[-1]}", file=sys.stderr)
        return a

    for item in sample:
        variables = {"id": item["id"]}
        both("inventoryItem", ITEM, variables)
        history = both("inventoryHistory", HISTORY, variables)
        allocations = both("allocations", ALLOCATIONS, variables)
        events = both("events", EVENTS, variables)
        warehouse = item["warehouseId"]
        if warehouse not in reports:
            reports[warehouse] = both("stockMovementReport", REPORT, {"warehouse": warehouse})
        report = reports[warehouse]
        # What the comparison covered: equal empty answers prove little, so count them.
        nonempty["history"] += bool(history and history["inventoryHistory"]["edges"])
        nonempty["allocations"] += bool(allocations and allocations["allocations"]["edges"])
        nonempty["events"] += bool(events and events["events"]["edges"])
        nonempty["reportRows"] += bool(
            report
            and any(r["itemId"] == item["id"] for r in report["stockMovementReport"]["rows"])
        )

    for error in errors:
        print(f"archive-compare: ERROR {error}", file=sys.stderr)
    print(json.dumps({
        "items_in_store": len(items),
        "items_sampled": len(sample),
        "seed": seed,
        "warehouse_reports": len(reports),
        "queries_compared": compared,
        "mismatches": len(mismatches),
        "errors": len(errors),
        "sampled_items_with": nonempty,
        "seconds": round(time.monotonic() - started, 1),
    }))
    return 1 if mismatches or errors else 0


if __name__ == "__main__":
    sys.exit(main())
