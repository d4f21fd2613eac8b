// A relying party on openid-client 6 (oauth4webapi underneath) with DPoP (RFC 9449), as
// an integrator writes it: a key pair, getDPoPHandle, the request pushed to /par with a
// proof (which binds the code to the key), the code exchanged and the token refreshed
// with proofs, and userinfo called with the DPoP-bound token. openid-client answers the
// server's use_dpop_nonce itself (it retries once with the DPoP-Nonce given).
// Usage: node dpop.mjs start ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
//        node dpop.mjs finish ISSUER CLIENT_ID CLIENT_SECRET CALLBACK_URL VERIFIER STATE NONCE KEYS
// Prints one JSON line (start: the URL, the checks and the key pair as JWKs).
import * as client from "openid-client";
import * as oauth from "oauth4webapi";
import { exported, imported } from "./dpop_keys.mjs";

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
    const keyPair = await oauth.generateKeyPair("ES256", { extractable: true });
    const DPoP = client.getDPoPHandle(config, keyPair);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = await client.buildAuthorizationUrlWithPAR(
      config,
      {
        redirect_uri: rest[0],
        scope: "openid email offline_access",
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: "S256",
        state,
        nonce,
      },
      { DPoP },
    );
    const keys = await exported(keyPair);
    console.log(JSON.stringify({ url: url.href, verifier, state, nonce, keys }));
  } else {
    const [callback, verifier, state, nonce, keys] = rest;
    const DPoP = client.getDPoPHandle(config, await imported(JSON.parse(keys)));
    const tokens = await client.authorizationCodeGrant(
      config,
      new URL(callback),
      { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce },
      undefined,
      { DPoP },
    );
    const claims = tokens.claims();
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, {
      DPoP,
    });
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, {
      DPoP,
    });
    console.log(
      JSON.stringify({
        claims,
        token_type: tokens.token_type,
        access_token: tokens.access_token,
        userinfo,
        refreshed_token_type: refreshed.token_type,
        refreshed_access_token: refreshed.access_token,
      }),
    );
  }
} catch (error) {
  console.log(JSON.stringify({ error: error.error ?? error.code ?? String(error) }));
}
