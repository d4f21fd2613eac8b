// A DPoP key pair (ES256) carried between the two runs of a test's RP script (start,
// then finish) as JWKs: what dpop.mjs and fapi2.mjs share.
export const ES256 = { name: "ECDSA", namedCurve: "P-256" };

export async function exported(keyPair) {
  return {
    privateKey: await crypto.subtle.exportKey("jwk", keyPair.privateKey),
    publicKey: await crypto.subtle.exportKey("jwk", keyPair.publicKey),
  };
}

export async function imported(keys) {
  return {
    privateKey: await crypto.subtle.importKey("jwk", keys.privateKey, ES256, false, ["sign"]),
    publicKey: await crypto.subtle.importKey("jwk", keys.publicKey, ES256, true, ["verify"]),
  };
}
