// A relying party on openid-client 6 registering itself (RFC 7591) with an initial
// access token, as an integrator writes it: dynamicClientRegistration, then a
// client_credentials grant with the Configuration it returns.
// Usage: node register.mjs ISSUER INITIAL_ACCESS_TOKEN
// Prints one JSON line.
import * as client from "openid-client";

const [issuer, initialAccessToken] = process.argv.slice(2);

try {
  const config = await client.dynamicClientRegistration(
    new URL(issuer),
    {
      client_name: "node registered service",
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "client_secret_basic",
      scope: "api:read",
    },
    undefined, // client_secret_post with the registered secret (openid-client's default)
    { initialAccessToken, execute: [client.allowInsecureRequests] }, // the test server is http
  );
  const metadata = config.clientMetadata();
  const tokens = await client.clientCredentialsGrant(config, { scope: "api:read" });
  console.log(
    JSON.stringify({
      client_id: metadata.client_id,
      client_secret: metadata.client_secret,
      registration_access_token: metadata.registration_access_token,
      registration_client_uri: metadata.registration_client_uri,
      access_token: tokens.access_token,
      token_type: tokens.token_type,
    }),
  );
} catch (error) {
  console.log(JSON.stringify({ error: error.error ?? error.code ?? String(error) }));
}
