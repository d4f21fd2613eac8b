// A relying party on openid-client 6 (the certified Node library), as an integrator
// writes it: discovery, then the client credentials grant, authenticating with the
// library's default (client_secret_post) and with client_secret_basic.
// Usage: node rp.mjs ISSUER CLIENT_ID CLIENT_SECRET; prints one JSON line.
import * as client from "openid-client";

const [issuer, clientId, clientSecret] = process.argv.slice(2);
const options = { execute: [client.allowInsecureRequests] }; // the test server is http://127.0.0.1

const results = {};
for (const [name, auth] of [
  ["default", undefined],
  ["client_secret_basic", client.ClientSecretBasic(clientSecret)],
  ["client_secret_post", client.ClientSecretPost(clientSecret)],
]) {
  try {
    const config = await client.discovery(new URL(issuer), clientId, clientSecret, auth, options);
    const tokens = await client.clientCredentialsGrant(config, { scope: "api:read" });
    results[name] = { access_token: tokens.access_token, scope: tokens.scope };
  } catch (error) {
    results[name] = { error: error.error ?? error.code ?? String(error), status: error.status };
  }
}
console.log(JSON.stringify(results));
