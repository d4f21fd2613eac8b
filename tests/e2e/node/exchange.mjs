// A service on openid-client 6 (the certified Node library), as an integrator writes
// it: a client_credentials token for a resource server (RFC 8707, `resource`), then
// token exchange (RFC 8693) with genericGrantRequest: the user's access token as the
// subject, the service's own token as the actor, for a downstream resource; and an
// exchange to a resource outside the service's policy, which must be refused.
// Usage: node exchange.mjs ISSUER CLIENT_ID CLIENT_SECRET SUBJECT_TOKEN RESOURCE OTHER
// Prints one JSON line.
import * as client from "openid-client";

const [issuer, clientId, clientSecret, subjectToken, resource, other] = process.argv.slice(2);
const options = { execute: [client.allowInsecureRequests] }; // the test server is http://127.0.0.1
const AT = "urn:ietf:params:oauth:token-type:access_token";
const GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";

const results = {};
const config = await client.discovery(
  new URL(issuer), clientId, clientSecret, client.ClientSecretBasic(clientSecret), options,
);
results.grant_types_supported = config.serverMetadata().grant_types_supported;
try {
  const own = await client.clientCredentialsGrant(config, { scope: "orders:read", resource });
  results.client_credentials = { access_token: own.access_token, scope: own.scope };
  const actor = await client.clientCredentialsGrant(config, { scope: "service:call" });
  const exchanged = await client.genericGrantRequest(config, GRANT, {
    subject_token: subjectToken,
    subject_token_type: AT,
    actor_token: actor.access_token,
    actor_token_type: AT,
    resource,
  });
  results.exchange = {
    access_token: exchanged.access_token,
    issued_token_type: exchanged.issued_token_type,
    token_type: exchanged.token_type,
    scope: exchanged.scope,
    expires_in: exchanged.expires_in,
  };
} catch (error) {
  results.error = { error: error.error ?? error.code ?? String(error), status: error.status };
}
try {
  await client.genericGrantRequest(config, GRANT, {
    subject_token: subjectToken,
    subject_token_type: AT,
    resource: other,
  });
  results.refused = { error: "none: the exchange was allowed" };
} catch (error) {
  results.refused = { error: error.error ?? error.code ?? String(error), status: error.status };
}
console.log(JSON.stringify(results));
