// Baseline for bench/token_endpoint.py and bench/rp_paths.py: node-oidc-provider 9
// issuing JWT access tokens (ES256 by default) for a resource server, one confidential
// client authenticating with client_secret_basic; DPoP-bound tokens for a request with a
// DPoP proof (bench/dpop.py).
//
//   node server.js --port 3100 [--host 127.0.0.1] [--alg ES256|RS256]
//                  [--id-token-alg RS256|ES256]
//
// Configured as 1pass is: access tokens are JWTs for a default resource (--alg),
// ID tokens RS256 unless --id-token-alg, refresh tokens rotated on every use, PKCE
// required, one client with the authorization_code, refresh_token and
// client_credentials grants, and one account whose claims include email,
// email_verified and name. The client's id and secret come from the environment
// (BENCH_CLIENT_ID, BENCH_CLIENT_SECRET) so that the benchmark script controls them.
// Signing keys (one ES256, one RS256) are generated at start-up and kept in memory only.
//
// Storage is the provider's own in-memory adapter, but with a large LRU: the
// default one holds 1,000 entries, and a benchmark run mints tens of thousands of
// codes and refresh tokens before it sends them, which would evict them unused.
//
// With BENCH_MINT=1 (never otherwise), POST /bench/mint creates tokens in-process
// with the provider's own models and returns them one a line, text/plain:
//   /bench/mint?kind=code&n=N&code_challenge=C    authorization codes (PKCE S256)
//   /bench/mint?kind=refresh&n=N                  refresh tokens
//   /bench/mint?kind=access&n=N                   opaque access tokens for /userinfo
//   /bench/mint?kind=device&n=N                   pending device codes (bench/device.py)
// Each token gets its own grant (as one login would), for the bench account and
// client, with the scope BENCH_SCOPE.
import {
  createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes,
} from 'node:crypto';
import { parseArgs } from 'node:util';

import * as jose from 'jose'; // oidc-provider's own JOSE library (its dependency)
import Provider, { errors } from 'oidc-provider';
// deep imports (the package has no "exports" map): the provider's own memory adapter
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '3100' },
    alg: { type: 'string', default: 'ES256' },
    'id-token-alg': { type: 'string', default: 'RS256' },
  },
});

const alg = args.alg.toUpperCase();
const idTokenAlg = args['id-token-alg'].toUpperCase();
for (const [flag, value] of [['--alg', alg], ['--id-token-alg', idTokenAlg]]) {
  if (value !== 'ES256' && value !== 'RS256') {
    console.error(`unsupported ${flag} ${value} (ES256 or RS256)`);
    process.exit(2);
  }
}

const clientId = process.env.BENCH_CLIENT_ID || 'bench';
const clientSecret = process.env.BENCH_CLIENT_SECRET || 'bench-secret-bench-secret-bench-secret';
const issuer = `http://${args.host}:${args.port}`;
const resource = 'urn:onepass:bench:api';
const redirectUri = process.env.BENCH_REDIRECT_URI || 'http://127.0.0.1:9/cb';
const scope = process.env.BENCH_SCOPE || 'openid offline_access email profile';
const accountId = 'bench-account';
const mintEnabled = process.env.BENCH_MINT === '1';
const store = new LRU({ maxSize: 10_000_000 });
// The Device Authorization Grant (RFC 8628, bench/device.py): a public client (a TV app)
// with the device_code grant, polling with client_id only.
const deviceClientId = process.env.BENCH_DEVICE_CLIENT_ID || 'bench-device';
const deviceGrant = 'urn:ietf:params:oauth:grant-type:device_code';

function jwk(type, options, keyAlg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: `bench-${keyAlg.toLowerCase()}`, alg: keyAlg, use: 'sig' };
}

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: [
        'authorization_code', 'refresh_token', 'client_credentials',
        'urn:ietf:params:oauth:grant-type:token-exchange', // bench/token_exchange.py
      ],
      response_types: ['code'],
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: idTokenAlg,
    },
    {
      client_id: deviceClientId,
      grant_types: [deviceGrant, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: idTokenAlg,
    },
  ],
  adapter: (model) => new MemoryAdapter(model, store),
  findAccount: (ctx, sub) => (sub !== accountId ? undefined : {
    accountId: sub,
    claims: () => ({
      sub, email: 'bench@example.com', email_verified: true, name: 'Bench User',
    }),
  }),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  enabledJWA: { idTokenSigningAlgValues: [idTokenAlg] },
  issueRefreshToken: (ctx, client, source) => client.grantTypeAllowed('refresh_token')
    && source.scopes.has('offline_access'),
  pkce: { required: () => true },
  rotateRefreshToken: true,
  ttl: {
    // as the 1pass bench server (ONEPASS_AUTHORIZATION_CODE_TTL=600): codes are minted
    // before a run and must outlive it
    AuthorizationCode: 600,
    AccessToken: 3600,
    ClientCredentials: 3600,
    DeviceCode: 600, // as ONEPASS_DEVICE_CODE_TTL (bench/device.py)
    Grant: 14 * 24 * 3600,
    IdToken: 3600,
    Interaction: 3600,
    RefreshToken: 14 * 24 * 3600,
    Session: 14 * 24 * 3600,
  },
  // The RS256 key is also what the provider defaults to for ID tokens.
  jwks: {
    keys: [
      jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
      jwk('rsa', { modulusLength: 2048 }, 'RS256'),
    ],
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // DPoP (RFC 9449), as bench/dpop.py measures it: on by default in oidc-provider 9
    // (replayed proofs refused through the adapter, no nonces), said here explicitly.
    dPoP: { enabled: true },
    // RFC 8628, as bench/device.py measures it: the provider's defaults (device codes
    // live 600 s, as 1pass's ONEPASS_DEVICE_CODE_TTL).
    deviceFlow: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: resource,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg } },
      }),
    },
  },
};

const provider = new Provider(issuer, configuration);

// ------------------------------------------------------------------ token exchange
// bench/token_exchange.py: node-oidc-provider has no built-in RFC 8693 grant, so one is
// registered doing what 1pass's does: verify the subject token (a JWT access token this
// provider issued) with the provider's own keys (signature, issuer, typ, expiry), narrow
// its scope to the resource's, and sign a new JWT access token for the resource, its
// exp capped at the subject token's. The client is authenticated by the provider's
// token endpoint before the handler runs.
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const verifyKeys = new Map(configuration.jwks.keys.map((k) => [k.kid, createPublicKey({ key: k, format: 'jwk' })]));
const exchangeKey = configuration.jwks.keys.find((k) => k.alg === alg);
const exchangeSigner = createPrivateKey({ key: exchangeKey, format: 'jwk' });

async function tokenExchange(ctx) {
  const { params } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('subject_token_type must be an access token');
  }
  const target = params.resource || params.audience;
  if (target !== resource) throw new errors.InvalidTarget();
  let subject;
  try {
    ({ payload: subject } = await jose.jwtVerify(
      params.subject_token,
      (header) => verifyKeys.get(header.kid),
      { issuer, typ: 'at+jwt' },
    ));
  } catch {
    throw new errors.InvalidRequest('subject_token is invalid');
  }
  const now = Math.floor(Date.now() / 1000);
  const scope = String(subject.scope || '').split(' ').filter((s) => s === 'api').join(' ');
  const exp = Math.min(now + 3600, subject.exp);
  const accessToken = await new jose.SignJWT({
    client_id: ctx.oidc.client.clientId, scope, jti: randomBytes(16).toString('base64url'),
  })
    .setProtectedHeader({ alg, kid: exchangeKey.kid, typ: 'at+jwt' })
    .setIssuer(issuer).setSubject(subject.sub).setAudience(resource)
    .setIssuedAt(now).setExpirationTime(exp)
    .sign(exchangeSigner);
  ctx.body = {
    access_token: accessToken,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: exp - now,
    scope,
  };
}

provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, new Set([
  'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
  'requested_token_type', 'resource', 'audience', 'scope',
]));

// ------------------------------------------------------------------ bench-only minting

async function mintOne(kind, client, codeChallenge) {
  if (kind === 'device') {
    // pending: no account yet, as /device_authorization leaves it
    return new provider.DeviceCode({
      client,
      deviceInfo: { ip: '127.0.0.1', ua: 'bench' },
      params: { client_id: client.clientId, scope },
      userCode: randomBytes(8).toString('hex').toUpperCase(),
    }).save();
  }
  const grant = new provider.Grant({ accountId, clientId: client.clientId });
  grant.addOIDCScope(scope);
  grant.addResourceScope(resource, 'api');
  const grantId = await grant.save();
  const common = {
    accountId, client, grantId, scope, authTime: Math.floor(Date.now() / 1000),
  };
  if (kind === 'code') {
    return new provider.AuthorizationCode({
      ...common,
      resource,
      redirectUri,
      codeChallenge,
      codeChallengeMethod: 'S256',
    }).save();
  }
  if (kind === 'refresh') {
    return new provider.RefreshToken({
      ...common, resource, gty: 'authorization_code', rotations: 0,
    }).save();
  }
  // no resource: an opaque access token, the only kind /userinfo accepts
  return new provider.AccessToken({ ...common, gty: 'authorization_code' }).save();
}

if (mintEnabled) {
  provider.use(async (ctx, next) => {
    if (ctx.path !== '/bench/mint') {
      await next();
      return;
    }
    const { kind, n = '1', code_challenge: codeChallenge } = ctx.query;
    const count = Number(n);
    if (ctx.method !== 'POST' || !['code', 'refresh', 'access', 'device'].includes(kind)
        || !(count > 0 && count <= 1_000_000) || (kind === 'code' && !codeChallenge)) {
      ctx.status = 400;
      ctx.body = 'POST /bench/mint?kind=code|refresh|access|device&n=N[&code_challenge=C]\n';
      return;
    }
    const client = await provider.Client.find(kind === 'device' ? deviceClientId : clientId);
    const tokens = [];
    for (let i = 0; i < count; i += 1) {
      // eslint-disable-next-line no-await-in-loop
      tokens.push(await mintOne(kind, client, codeChallenge));
    }
    ctx.type = 'text/plain';
    ctx.body = `${tokens.join('\n')}\n`;
  });
}

const server = provider.listen(Number(args.port), args.host, () => {
  console.log(
    `node-oidc-provider listening on ${issuer} (access tokens: JWT ${alg}, ID tokens ${idTokenAlg}`
    + `${mintEnabled ? ', POST /bench/mint enabled' : ''})`,
  );
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
