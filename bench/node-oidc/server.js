// Baseline for bench/token_endpoint.py: node-oidc-provider 9 issuing JWT access
// tokens for the client_credentials grant, one client authenticating with
// client_secret_basic.
//
//   node server.js --port 3100 [--host 127.0.0.1] [--alg ES256|RS256]
//
// The client's id and secret come from the environment (BENCH_CLIENT_ID,
// BENCH_CLIENT_SECRET) so that the benchmark script controls them. Signing keys
// (one ES256, one RS256) are generated at start-up and kept in memory only.
// Tokens are the default in-memory adapter's; JWT access tokens are not stored.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '3100' },
    alg: { type: 'string', default: 'ES256' },
  },
});

const alg = args.alg.toUpperCase();
if (alg !== 'ES256' && alg !== 'RS256') {
  console.error(`unsupported --alg ${args.alg} (ES256 or RS256)`);
  process.exit(2);
}

const clientId = process.env.BENCH_CLIENT_ID || 'bench';
const clientSecret = process.env.BENCH_CLIENT_SECRET || 'bench-secret-bench-secret-bench-secret';
const issuer = `http://${args.host}:${args.port}`;
const resource = 'urn:onepass:bench:api';

function jwk(type, options, keyAlg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: `bench-${keyAlg.toLowerCase()}`, alg: keyAlg, use: 'sig' };
}

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
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

const server = provider.listen(Number(args.port), args.host, () => {
  console.log(`node-oidc-provider listening on ${issuer} (access tokens: JWT ${alg})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
