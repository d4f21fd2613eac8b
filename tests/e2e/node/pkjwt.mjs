// A service on openid-client 6 authenticating with private_key_jwt (RFC 7523):
// `node pkjwt.mjs keygen` makes an ES256 key pair, keeps the private key in key.json and
// prints the public JWK set to register; `node pkjwt.mjs token ISSUER CLIENT_ID` gets a
// client credentials token with client.PrivateKeyJwt. Prints one JSON line.
import { readFile, writeFile } from "node:fs/promises";
import * as client from "openid-client";

const [mode, issuer, clientId] = process.argv.slice(2);
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
    const tokens = await client.clientCredentialsGrant(config, { scope: "api:read" });
    console.log(JSON.stringify({ access_token: tokens.access_token, scope: tokens.scope }));
  } catch (error) {
    console.log(JSON.stringify({ error: error.error ?? error.code ?? String(error) }));
  }
}
