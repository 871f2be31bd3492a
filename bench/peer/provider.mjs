// Peer OpenID Provider of `make bench`: panva/oidc-provider (pinned in the repository's package.json)
// with one confidential client, PKCE required, RS256 ID tokens, an in-memory adapter and a login
// that needs no form. The benchmark starts it and stops it:
//
//   PORT=7171 node bench/peer/provider.mjs
//
// Environment: PORT (7171), CLIENT_ID (bench-client), CLIENT_SECRET (bench-secret),
// REDIRECT_URI (http://127.0.0.1:7172/cb), ACCOUNT_ID (bench-user); TLS_CERT and TLS_KEY (PEM files):
// served over HTTPS with them, as the broker is, else over plain HTTP. It listens on 127.0.0.1 only.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

// Resolved from the repository's node_modules (`npm ci`, run by `make install`).
import Provider from 'oidc-provider';

const PORT = Number.parseInt(process.env.PORT ?? '7171', 10);
const HOST = '127.0.0.1';
const TLS = process.env.TLS_CERT && process.env.TLS_KEY
  ? { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) }
  : null;
const ISSUER = `${TLS ? 'https' : 'http'}://${HOST}:${PORT}`;
const CLIENT_ID = process.env.CLIENT_ID ?? 'bench-client';
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? 'bench-secret';
const REDIRECT_URI = process.env.REDIRECT_URI ?? 'http://127.0.0.1:7172/cb';
const ACCOUNT_ID = process.env.ACCOUNT_ID ?? 'bench-user';

const epochSeconds = () => Math.floor(Date.now() / 1000);

// Adapter interface of oidc-provider (find, findByUid, findByUserCode, upsert, consume,
// destroy, revokeByGrantId) over one Map, with expiry. The library's built-in development
// adapter is an LRU capped at 1000 entries, which would evict authorization codes issued
// ahead of a /token burst; this one keeps every artifact until it expires.
const store = new Map(); // key -> { payload, expiresAt (ms epoch or Infinity) }

function storeGet(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

function storeSet(key, payload, expiresIn) {
  const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
  store.set(key, { payload, expiresAt });
}

setInterval(() => {
  const now = Date.now();
  for (const [key, { expiresAt }] of store) {
    if (expiresAt <= now) store.delete(key);
  }
}, 60_000).unref();

class MemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (this.model === 'Session') storeSet(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.userCode) storeSet(`userCode:${payload.userCode}`, id, expiresIn);
    if (payload.grantId) {
      // Index of the artifacts issued under a grant, kept as long as its longest-lived member.
      const grantKey = `grant:${payload.grantId}`;
      const index = store.get(grantKey) ?? { payload: new Set(), expiresAt: 0 };
      index.payload.add(key);
      const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
      index.expiresAt = Math.max(index.expiresAt, expiresAt);
      store.set(grantKey, index);
    }
    storeSet(key, payload, expiresIn);
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUid(uid) {
    const id = storeGet(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storeGet(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = epochSeconds();
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    for (const key of storeGet(grantKey) ?? []) store.delete(key);
    store.delete(grantKey);
  }
}

// A fresh RS256 signing key per process; relying parties read it from the JWKS endpoint.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'peer-rs256', alg: 'RS256', use: 'sig' };

const provider = new Provider(ISSUER, {
  adapter: MemoryAdapter,
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  async findAccount(ctx, sub) {
    if (sub !== ACCOUNT_ID) return undefined;
    return { accountId: sub, async claims() { return { sub }; } };
  },
  // The library's default lifetimes, set explicitly (this also silences its notices).
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
});

// Non-interactive login and consent. interactions.url sends the browser to
// /interaction/<uid>; this handler finishes that interaction at once: a login prompt is
// answered with the fixed account, and a grant of openid (plus whatever scopes and claims
// oidc-provider reports missing) is submitted as the consent, so one round trip through
// /interaction completes both steps. oidc-provider still evaluates both prompts on resume.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([\w-]+)$/.exec(ctx.path);
  if (!match || ctx.method !== 'GET') return next();

  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== match[1]) ctx.throw(400, 'interaction mismatch');
  const { prompt, params } = details;

  const result = {};
  let accountId = details.session?.accountId;
  if (prompt.name === 'login') {
    accountId = ACCOUNT_ID;
    result.login = { accountId };
  }

  const grant = (details.grantId && await provider.Grant.find(details.grantId))
    || new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(['openid', ...(prompt.details.missingOIDCScope ?? [])].join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  result.consent = { grantId: await grant.save() };

  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
});

const listening = () => console.log(`oidc-provider listening on ${ISSUER} (pid ${process.pid})`);
// Node.js keeps HTTP/1.1 connections alive by default, over TLS as over plain HTTP.
const server = TLS
  ? createServer(TLS, provider.callback()).listen(PORT, HOST, listening)
  : provider.listen(PORT, HOST, listening);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
