// The commands an operator may run from an item's page: adjust stock, allocate, and confirm,
// cancel or fulfil an allocation. Each form keeps one idempotency key until it succeeds, so a
// resubmit after a lost reply applies once; a `userErrors` entry is shown beside the field it
// names (`["input", "delta"]` under Delta), any other above the form's button.
import { useId, useState } from 'react';
import { useMutation } from 'urql';
import { ADJUST, ALLOCATE, CANCEL, CONFIRM, FULFIL, REASONS } from './queries.js';

/** A random key; `crypto.randomUUID` needs a secure context, which plain http off loopback is not. */
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A mutation with its idempotency key and its errors split by the input field they name. */
function useCommand(document, name) {
  const [state, execute] = useMutation(document);
  const [key, setKey] = useState(newKey);
  const [errors, setErrors] = useState([]);
  const run = async (input) => {
    const result = await execute({ input: { ...input, idempotencyKey: key } });
    const payload = result.data?.[name];
    const failures = result.error
      ? [{ field: null, message: result.error.graphQLErrors[0]?.message ?? result.error.message, code: 'ERROR' }]
      : (payload?.userErrors ?? []);
    setErrors(failures);
    if (failures.length === 0) setKey(newKey());
    return failures.length === 0;
  };
  const fieldOf = (e) => e.field?.[e.field.length - 1];
  return {
    run,
    busy: state.fetching,
    /** The errors naming `field`. */
    on: (field) => errors.filter((e) => fieldOf(e) === field),
    /** The errors naming none of `fields`. */
    rest: (fields) => errors.filter((e) => !fields.includes(fieldOf(e))),
  };
}

function Errors({ id, errors }) {
  if (errors.length === 0) return null;
  return (
    <ul className="field-errors" id={id} role="alert">
      {errors.map((e) => (
        <li key={e.message} data-code={e.code}>
          {e.message}
        </li>
      ))}
    </ul>
  );
}

/** A labelled input with the errors that name it, linked by aria-describedby. */
function Field({ label, name, command, children, ...input }) {
  const id = `${useId()}-${name}`;
  const errors = command.on(name);
  return (
    <div className="field" data-field={name}>
      <label htmlFor={id}>{label}</label>
      {children ? (
        children({ id, 'aria-invalid': errors.length > 0, 'aria-describedby': errors.length ? `${id}-errors` : undefined })
      ) : (
        <input id={id} name={name} aria-invalid={errors.length > 0} aria-describedby={errors.length ? `${id}-errors` : undefined} {...input} />
      )}
      <Errors id={`${id}-errors`} errors={errors} />
    </div>
  );
}

const ADJUST_FIELDS = ['delta', 'reason', 'reference'];

export function AdjustForm({ item }) {
  const command = useCommand(ADJUST, 'inventoryAdjust');
  const [delta, setDelta] = useState('');
  const [reason, setReason] = useState('RECEIVED');
  const [reference, setReference] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    // Sent as typed (an empty or zero delta too): the service says what is wrong with it.
    const ok = await command.run({ itemId: item.id, delta: Number.parseInt(delta || '0', 10), reason, reference: reference || null });
    if (ok) {
      setDelta('');
      setReference('');
    }
  };
  return (
    <form className="command" aria-labelledby="adjust-title" onSubmit={submit}>
      <h3 id="adjust-title">Adjust stock</h3>
      <Field label="Delta" name="delta" command={command} type="number" inputMode="numeric" step="1" value={delta} onChange={(e) => setDelta(e.target.value)} />
      <Field label="Reason" name="reason" command={command}>
        {(props) => (
          <select {...props} value={reason} onChange={(e) => setReason(e.target.value)}>
            {REASONS.map(([value, text]) => (
              <option key={value} value={value}>
                {text}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Reference" name="reference" command={command} value={reference} maxLength={300} onChange={(e) => setReference(e.target.value)} />
      <Errors errors={command.rest(ADJUST_FIELDS)} />
      <button type="submit" disabled={command.busy}>
        Adjust
      </button>
    </form>
  );
}

const ALLOCATE_FIELDS = ['orderId', 'quantity', 'expiresAt'];

export function AllocateForm({ item }) {
  const command = useCommand(ALLOCATE, 'allocationCreate');
  const [orderId, setOrderId] = useState('');
  const [quantity, setQuantity] = useState('');
  const [expiresAt, setExpiresAt] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    const ok = await command.run({
      itemId: item.id,
      orderId,
      quantity: Number.parseInt(quantity || '0', 10),
      // datetime-local is the viewer's local time; the API takes an instant.
      expiresAt: expiresAt ? new Date(expiresAt).toISOString() : null,
    });
    if (ok) {
      setOrderId('');
      setQuantity('');
      setExpiresAt('');
    }
  };
  return (
    <form className="command" aria-labelledby="allocate-title" onSubmit={submit}>
      <h3 id="allocate-title">Allocate</h3>
      <Field label="Order" name="orderId" command={command} value={orderId} onChange={(e) => setOrderId(e.target.value)} />
      <Field label="Quantity" name="quantity" command={command} type="number" inputMode="numeric" min="1" step="1" value={quantity} onChange={(e) => setQuantity(e.target.value)} />
      <Field label="Expires (optional)" name="expiresAt" command={command} type="datetime-local" value={expiresAt} onChange={(e) => setExpiresAt(e.target.value)} />
      <Errors errors={command.rest(ALLOCATE_FIELDS)} />
      <button type="submit" disabled={command.busy}>
        Allocate
      </button>
    </form>
  );
}

/** The buttons an allocation's status allows: confirm a created one, fulfil a confirmed one, cancel either. */
export function AllocationActions({ allocation }) {
  const confirm = useCommand(CONFIRM, 'allocationConfirm');
  const fulfil = useCommand(FULFIL, 'allocationFulfill');
  const cancel = useCommand(CANCEL, 'allocationCancel');
  const [cancelling, setCancelling] = useState(false);
  const [reason, setReason] = useState('');
  const open = allocation.status === 'CREATED' || allocation.status === 'CONFIRMED';
  if (!open) return null;
  const label = `allocation for order ${allocation.orderId}`;
  return (
    <div className="row-actions">
      {allocation.status === 'CREATED' && (
        <button type="button" disabled={confirm.busy} onClick={() => confirm.run({ id: allocation.id })} aria-label={`Confirm ${label}`}>
          Confirm
        </button>
      )}
      {allocation.status === 'CONFIRMED' && (
        <button type="button" disabled={fulfil.busy} onClick={() => fulfil.run({ id: allocation.id })} aria-label={`Fulfil ${label}`}>
          Fulfil
        </button>
      )}
      {cancelling ? (
        <form
          className="inline"
          onSubmit={async (e) => {
            e.preventDefault();
            if (await cancel.run({ id: allocation.id, reason })) setCancelling(false);
          }}
        >
          <Field label="Reason" name="reason" command={cancel} value={reason} onChange={(e) => setReason(e.target.value)} autoFocus />
          <button type="submit" disabled={cancel.busy}>
            Cancel allocation
          </button>
          <button type="button" onClick={() => setCancelling(false)}>
            Keep
          </button>
        </form>
      ) : (
        <button type="button" onClick={() => setCancelling(true)} aria-label={`Cancel ${label}`}>
          Cancel…
        </button>
      )}
      <Errors errors={[...confirm.rest([]), ...fulfil.rest([]), ...cancel.rest(['reason'])]} />
    </div>
  );
}
