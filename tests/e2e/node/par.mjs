// A relying party on openid-client 6 using pushed authorization requests (RFC 9126),
// as an integrator writes it: buildAuthorizationUrlWithPAR, then the code exchange.
// Usage: node par.mjs start ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
//        node par.mjs finish ISSUER CLIENT_ID CLIENT_SECRET CALLBACK_URL VERIFIER STATE NONCE
// Prints one JSON line.
import * as client from "openid-client";

const [mode, issuer, clientId, clientSecret, ...rest] = process.argv.slice(2);
const options = { execute: [client.allowInsecureRequests] }; // the test server is http
const config = await client.discovery(
  new URL(issuer),
  clientId,
  clientSecret,
  client.ClientSecretBasic(clientSecret),
  options,
);

try {
  if (mode === "start") {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = await client.buildAuthorizationUrlWithPAR(config, {
      redirect_uri: rest[0],
      scope: "openid email",
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
    });
    console.log(JSON.stringify({ url: url.href, verifier, state, nonce }));
  } else {
    const [callback, verifier, state, nonce] = rest;
    const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    console.log(JSON.stringify({ claims: tokens.claims(), token_type: tokens.token_type }));
  }
} catch (error) {
  console.log(JSON.stringify({ error: error.error ?? error.code ?? String(error) }));
}
