// Drives Payment Kit's own Node SDK (@blocklet/payment-js) against a running paybridge, for
// tests/interop/test_payment_kit_sdk.py. The environment says where "Payment Kit" listens
// (BLOCKLET_MOUNT_POINTS), which app key signs (BLOCKLET_APP_SK) and the mode (PAYMENT_LIVEMODE).
// Reads a JSON array of calls on stdin ({method, id?, data?}), writes a JSON array of results:
// {ok: <what the SDK returned>} or {error, status} when the SDK threw.
'use strict';

const payment = require('@blocklet/payment-js').default;

async function call({ method, id, data }) {
  const endpoints = payment.webhookEndpoints;
  switch (method) {
    case 'create':
      return endpoints.create(data);
    case 'list':
      return endpoints.list(data || {});
    case 'retrieve':
      return endpoints.retrieve(id);
    case 'update':
      return endpoints.update(id, data);
    case 'del':
      return endpoints.del(id);
    default:
      throw new Error(`unknown method ${method}`);
  }
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const calls = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const results = [];
  let lastId;
  for (const c of calls) {
    try {
      // "$last" stands for the id the previous create returned
      const ok = await call({ ...c, id: c.id === '$last' ? lastId : c.id });
      if (c.method === 'create') lastId = ok.id;
      results.push({ ok });
    } catch (error) {
      results.push({
        error: String(error && error.message),
        status: error && error.response ? error.response.status : null,
      });
    }
  }
  process.stdout.write(JSON.stringify(results));
  process.exit(0); // nothing of the SDK may keep the process alive
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack));
  process.exit(1);
});
