// A device (a TV app, a CLI) on openid-client 6 with the Device Authorization Grant
// (RFC 8628), as an integrator writes it: a public client, initiateDeviceAuthorization,
// the user code shown to the person (printed as the first JSON line, for the test to
// approve it), then pollDeviceAuthorizationGrant until the person decides; openid-client
// verifies the ID token itself. Usage: node device.mjs ISSUER CLIENT_ID SCOPE
// Prints two JSON lines: the device authorization response, then the outcome.
import * as client from "openid-client";

const [issuer, clientId, scope] = process.argv.slice(2);
const options = { execute: [client.allowInsecureRequests] }; // the test server is http
const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), options);

try {
  const response = await client.initiateDeviceAuthorization(config, { scope });
  console.log(JSON.stringify(response));
  const tokens = await client.pollDeviceAuthorizationGrant(config, response);
  console.log(
    JSON.stringify({
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token ?? null,
      scope: tokens.scope,
      claims: tokens.claims() ?? null,
    }),
  );
} catch (error) {
  console.log(JSON.stringify({ error: error.error ?? error.code ?? String(error), message: error.message }));
}
