// A relying party on openid-client 6 asking for a response mode: form_post (OAuth 2.0
// Form Post Response Mode), or JARM (jwt, form_post.jwt) with useJwtResponseMode, as an
// integrator writes it. The callback is the URL the browser went to and, for the form
// post modes, the body it posted there (a POST Request, as a web framework hands it on).
// Usage: node respmode.mjs start ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI MODE
//        node respmode.mjs finish ISSUER CLIENT_ID CLIENT_SECRET MODE CALLBACK_URL BODY VERIFIER STATE NONCE
// Prints one JSON line.
import * as client from "openid-client";

const [step, issuer, clientId, clientSecret, ...rest] = process.argv.slice(2);
const options = { execute: [client.allowInsecureRequests] }; // the test server is http
const config = await client.discovery(
  new URL(issuer),
  clientId,
  clientSecret,
  client.ClientSecretBasic(clientSecret),
  options,
);

try {
  if (step === "start") {
    const [redirectUri, mode] = rest;
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: "openid email",
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      response_mode: mode,
      state,
      nonce,
    });
    console.log(JSON.stringify({ url: url.href, verifier, state, nonce }));
  } else {
    const [mode, callback, body, verifier, state, nonce] = rest;
    if (mode.endsWith("jwt")) client.useJwtResponseMode(config);
    const current = body
      ? new Request(callback, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body,
        })
      : new URL(callback);
    const tokens = await client.authorizationCodeGrant(config, current, {
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
