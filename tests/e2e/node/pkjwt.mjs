// A client on openid-client 6 authenticating with private_key_jwt (RFC 7523):
// `node pkjwt.mjs keygen` makes an ES256 key pair, keeps the private key in key.json and
// prints the public JWK set to register; `node pkjwt.mjs token ISSUER CLIENT_ID` gets a
// client credentials token with client.PrivateKeyJwt. A web app signing its request
// with the same key (JAR, RFC 9101) and pushing it (PAR, RFC 9126):
// `node pkjwt.mjs jar-start ISSUER CLIENT_ID REDIRECT_URI`, then
// `node pkjwt.mjs jar-finish ISSUER CLIENT_ID CALLBACK_URL VERIFIER STATE NONCE`.
// Prints one JSON line.
import { readFile, writeFile } from "node:fs/promises";
import * as client from "openid-client";

const [mode, issuer, clientId, ...rest] = process.argv.slice(2);
const algorithm = { name: "ECDSA", namedCurve: "P-256" };

if (mode === "keygen") {
  const pair = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
  const privateJwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const publicJwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
  await writeFile("key.json", JSON.stringify(privateJwk));
  console.log(JSON.stringify({ keys: [{ ...publicJwk, kid: "node-1", alg: "ES256", use: "sig" }] }));
} else {
  const privateJwk = JSON.parse(await readFile("key.json", "utf8"));
  const key = await crypto.subtle.importKey("jwk", privateJwk, algorithm, false, ["sign"]);
  try {
    const config = await client.discovery(
      new URL(issuer),
      clientId,
      undefined,
      client.PrivateKeyJwt({ key, kid: "node-1" }),
      { execute: [client.allowInsecureRequests] },
    );
    if (mode === "token") {
      const tokens = await client.clientCredentialsGrant(config, { scope: "api:read" });
      console.log(JSON.stringify({ access_token: tokens.access_token, scope: tokens.scope }));
    } else if (mode === "jar-start") {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const signed = await client.buildAuthorizationUrlWithJAR(
        config,
        {
          redirect_uri: rest[0],
          scope: "openid email",
          code_challenge: await client.calculatePKCECodeChallenge(verifier),
          code_challenge_method: "S256",
          state,
          nonce,
        },
        { key, kid: "node-1" },
      );
      const url = await client.buildAuthorizationUrlWithPAR(config, signed.searchParams);
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
}
