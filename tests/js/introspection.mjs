// graphql-js, the reference implementation, introspects the running service with every option
// of `getIntrospectionQuery`, builds a client schema from the answer, validates it, and compares
// it with the committed schema.graphql. Usage: node introspection.mjs <service url>
import { readFile } from 'node:fs/promises';
import {
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  printSchema,
  validateSchema,
} from 'graphql';

const base = process.argv[2];
if (!base) {
  console.error('usage: node introspection.mjs <service url, e.g. http://127.0.0.1:8080>');
  process.exit(2);
}

function fail(message) {
  console.error(`introspection: FAIL: ${message}`);
  process.exit(1);
}

const query = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
});
const response = await fetch(new URL('/graphql', base), {
  method: 'POST',
  headers: {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json',
  },
  body: JSON.stringify({ query, operationName: 'IntrospectionQuery' }),
});
const text = await response.text();
if (response.status !== 200) fail(`HTTP ${response.status}: ${text.slice(0, 500)}`);
const type = response.headers.get('content-type') ?? '';
if (!type.startsWith('application/graphql-response+json')) fail(`content-type ${type}`);
const result = JSON.parse(text);
if (result.errors) fail(`errors: ${JSON.stringify(result.errors)}`);

const served = buildClientSchema(result.data);
const problems = validateSchema(served);
if (problems.length) fail(`invalid schema: ${problems.map((e) => e.message).join('; ')}`);

// Both through graphql-js's printer, so only a real difference (not layout: async-graphql
// indents with tabs and orders some definitions differently) can fail the comparison.
const committedSdl = await readFile(new URL('../../schema.graphql', import.meta.url), 'utf8');
const committed = printSchema(buildSchema(committedSdl));
const printed = printSchema(served);
if (printed !== committed) {
  const a = printed.split('\n');
  const b = committed.split('\n');
  const line = a.findIndex((l, i) => l !== b[i]);
  fail(
    `the introspected schema differs from schema.graphql, first at line ${line + 1}:\n` +
      `  introspected: ${a[line]}\n  committed:    ${b[line]}`,
  );
}
const types = Object.keys(served.getTypeMap()).filter((n) => !n.startsWith('__')).length;
console.log(
  `introspection: ok (${types} types, ${text.length} bytes; printSchema equals schema.graphql)`,
);
