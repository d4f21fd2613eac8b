// A FAPI 2.0 client on openid-client 6 (oauth4webapi underneath), as a bank's RP writes
// it: private_key_jwt with the key `node pkjwt.mjs keygen` made (key.json), the request
// signed (JAR, RFC 9101) and pushed (PAR, RFC 9126) with a DPoP proof (RFC 9449), PKCE
// S256, the code exchanged with a proof, userinfo with the DPoP-bound token, and two
// refreshes with the one refresh token (FAPI 2.0 §5.3.2.1: not rotated).
// Usage: node fapi2.mjs start ISSUER CLIENT_ID REDIRECT_URI
//        node fapi2.mjs finish ISSUER CLIENT_ID CALLBACK_URL VERIFIER STATE NONCE KEYS
// Prints one JSON line.
import { readFile } from "node:fs/promises";
import * as client from "openid-client";
import * as oauth from "oauth4webapi";
import { ES256, exported, imported } from "./dpop_keys.mjs";

const [mode, issuer, clientId, ...rest] = process.argv.slice(2);
const privateJwk = JSON.parse(await readFile("key.json", "utf8"));
const key = await crypto.subtle.importKey("jwk", privateJwk, ES256, false, ["sign"]);
const config = await client.discovery(
  new URL(issuer),
  clientId,
  { id_token_signed_response_alg: "ES256" },
  client.PrivateKeyJwt({ key, kid: "node-1" }),
  { execute: [client.allowInsecureRequests] }, // the test server is http
);


try {
  if (mode === "start") {
    const keyPair = await oauth.generateKeyPair("ES256", { extractable: true });
    const DPoP = client.getDPoPHandle(config, keyPair);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const signed = await client.buildAuthorizationUrlWithJAR(
      config,
      {
        redirect_uri: rest[0],
        scope: "openid email offline_access",
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: "S256",
        state,
        nonce,
      },
      { key, kid: "node-1" },
    );
    const url = await client.buildAuthorizationUrlWithPAR(config, signed.searchParams, { DPoP });
    console.log(JSON.stringify({ url: url.href, verifier, state, nonce, keys: await exported(keyPair) }));
  } else {
    const [callback, verifier, state, nonce, keys] = rest;
    const DPoP = client.getDPoPHandle(config, await imported(JSON.parse(keys)));
    const tokens = await client.authorizationCodeGrant(
      config,
      new URL(callback),
      { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
      undefined,
      { DPoP },
    );
    const claims = tokens.claims();
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
    const first = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
    const second = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
    console.log(
      JSON.stringify({
        claims,
        token_type: tokens.token_type,
        access_token: tokens.access_token,
        userinfo,
        refreshes: [first, second].map((r) => ({
          token_type: r.token_type,
          access_token: r.access_token,
          refresh_token: r.refresh_token ?? null,
        })),
      }),
    );
  }
} catch (error) {
  console.log(JSON.stringify({ error: error.error ?? error.code ?? String(error), detail: error.error_description ?? error.message }));
}
