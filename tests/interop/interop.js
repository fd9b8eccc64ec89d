// Drives ArcBlock's, Stripe's and Svix's own code for the tests in tests/interop.
// Reads a JSON array of commands on stdin, writes a JSON array of results on stdout.
// Every body/value crosses as JSON *text*, so JS sees exactly what JSON.parse gives it.
'use strict';

// @blocklet/sdk's middlewares/component.js requires ../config, which starts fetching blocklet
// metadata from the network. verifySig only uses config.default.logger: give it a silent one.
const configPath = require.resolve('@blocklet/sdk/lib/config');
require.cache[configPath] = {
  id: configPath,
  filename: configPath,
  loaded: true,
  exports: { __esModule: true, default: { logger: { error() {}, info() {}, warn() {} } } },
};

const { verifySig } = require('@blocklet/sdk/lib/middlewares/component');
const { getSignData } = require('@blocklet/sdk/lib/util/verify-sign');
const stableStringify = require('json-stable-stringify');
const { fromSecretKey, fromPublicKey, WalletType } = require('@ocap/wallet');
const { types } = require('@ocap/mcrypto');

const APP_WALLET = WalletType({
  role: types.RoleType.ROLE_APPLICATION,
  pk: types.KeyType.ED25519,
  hash: types.HashType.SHA3,
});

// The SDK's own signer (used by component.call): iat = now, exp = iat + 300.
async function sdkSign(cmd) {
  process.env.BLOCKLET_APP_SK = cmd.sk;
  const body = JSON.parse(cmd.body);
  const signed = await getSignData({ data: body, params: cmd.query, method: cmd.method, url: cmd.url });
  return {
    'x-component-sig': signed.sig,
    'x-component-sig-iat': String(signed.iat),
    'x-component-sig-exp': String(signed.exp),
    'x-component-sig-version': signed.version,
  };
}

// The SDK's verifySig middleware, run on an Express-like request.
async function sdkVerify(cmd) {
  process.env.BLOCKLET_APP_SK = cmd.sk;
  const headers = Object.fromEntries(Object.entries(cmd.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const search = new URLSearchParams(cmd.query).toString();
  const req = {
    get: (name) => headers[name.toLowerCase()],
    body: cmd.body === '' ? undefined : JSON.parse(cmd.body),
    method: cmd.method,
    originalUrl: search ? `${cmd.url}?${search}` : cmd.url,
    query: cmd.query,
  };
  return new Promise((resolve) => {
    const res = {
      code: 200,
      status(code) { this.code = code; return this; },
      json() { resolve(this.code); },
    };
    verifySig(req, res, () => resolve(200)).catch(() => resolve(500));
  });
}

// Receivers as their libraries verify: stripe-node's webhooks.constructEvent (throws on a bad
// signature) and svix's Webhook.verify (Standard Webhooks; svix 2 returns nothing and throws
// on a bad signature). Both answer the parsed event once it verified.
function stripeConstruct(cmd) {
  const Stripe = require('stripe');
  const stripe = new Stripe('sk_test_unused');
  return stripe.webhooks.constructEvent(cmd.body, cmd.header, cmd.secret);
}

function svixVerify(cmd) {
  const { Webhook } = require('svix');
  new Webhook(cmd.secret).verify(cmd.body, cmd.headers);
  return JSON.parse(cmd.body);
}

const handlers = {
  stripe_construct: async (cmd) => stripeConstruct(cmd),
  svix_verify: async (cmd) => svixVerify(cmd),
  stringify: async (cmd) => stableStringify(JSON.parse(cmd.json)),
  sdk_sign: sdkSign,
  sdk_verify: sdkVerify,
  // @ocap/wallet directly: the signature of a text (hashBeforeSign defaults to true).
  wallet_sign: async (cmd) => fromSecretKey(cmd.sk, APP_WALLET).sign(cmd.text),
  wallet_verify: async (cmd) => fromPublicKey(cmd.pk, APP_WALLET).verify(cmd.text, cmd.sig),
  public_key: async (cmd) => fromSecretKey(cmd.sk, APP_WALLET).publicKey,
};

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const commands = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const results = [];
  for (const cmd of commands) {
    try {
      results.push({ ok: await handlers[cmd.op](cmd) });
    } catch (error) {
      results.push({ error: String(error && error.message) });
    }
  }
  process.stdout.write(JSON.stringify(results));
  process.exit(0); // nothing of the SDK may keep the process alive
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack));
  process.exit(1);
});
