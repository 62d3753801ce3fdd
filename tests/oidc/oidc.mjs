// A real OpenID provider for the end-to-end tests (panva's oidc-provider), and a token signer
// for the hostile cases a provider would never issue.
//
//   node oidc.mjs keygen FILE KID            a private RS256 JWKS with one key, written to FILE
//   node oidc.mjs serve PORT KEYS            the provider at http://127.0.0.1:PORT, signing with KEYS;
//                                            prints "oidc ready ISSUER" once it listens
//   node oidc.mjs sign KEYS|none ALG HEADER CLAIMS   a JWT (HEADER and CLAIMS are JSON objects)
//
// Clients (client credentials, the patient record's back end): epr-hug and epr-chuv get a
// `tenants` claim of their tenant; epr-all none. `viewer` is a public client (a browser
// application: no secret, authorization code with PKCE), its users signed in through the
// provider's own development login and consent pages (any password); a user whose login starts
// with `hug-` gets the `hug` tenant. Access tokens are JWTs (RFC 9068) for the resource
// indicated (`urn:vna` by default, `urn:other` for a wrong audience).
import { readFileSync, writeFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';
import { SignJWT, exportJWK, generateKeyPair, importJWK } from 'jose';

const [cmd, ...args] = process.argv.slice(2);
const b64 = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

if (cmd === 'keygen') {
  const [file, kid] = args;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  writeFileSync(file, JSON.stringify({ keys: [jwk] }));
} else if (cmd === 'serve') {
  const [port, keysFile] = args;
  const issuer = `http://127.0.0.1:${port}`;
  const secret = (id) => `${id}-secret-0123456789abcdef`;
  const ids = ['epr-hug', 'epr-chuv', 'epr-all'];
  const tenants = { 'epr-hug': ['hug'], 'epr-chuv': ['chuv'] };
  const scopes = 'system/ImagingStudy.read system/ImagingStudy.rs system/ImagingStudy.cruds vna.admin vna.audit user/ImagingStudy.read';
  const provider = new Provider(issuer, {
    clients: [
      ...ids.map((id) => ({
        client_id: id,
        client_secret: secret(id),
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: scopes,
      })),
      {
        client_id: 'viewer',
        token_endpoint_auth_method: 'none',
        application_type: 'web',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/viewer/callback'],
        scope: `openid ${scopes}`,
      },
    ],
    pkce: { required: () => true },
    jwks: JSON.parse(readFileSync(keysFile, 'utf8')),
    scopes: ['openid', ...scopes.split(' ')],
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:vna',
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== 'urn:vna' && resource !== 'urn:other') throw new errors.InvalidTarget();
          return { scope: scopes, audience: resource, accessTokenTTL: 300, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    extraTokenClaims: (ctx, token) => {
      if (tenants[token.clientId]) return { tenants: tenants[token.clientId] };
      if (token.accountId?.startsWith('hug-')) return { tenants: ['hug'] };
      return undefined;
    },
  });
  provider.listen(Number(port), '127.0.0.1', () => console.log(`oidc ready ${issuer}`));
} else if (cmd === 'sign') {
  const [keysFile, alg, header, claims] = args;
  const h = JSON.parse(header);
  const c = JSON.parse(claims);
  if (alg === 'none') {
    console.log(`${b64({ ...h, alg: 'none' })}.${b64(c)}.`);
  } else if (alg === 'HS256') {
    // HMAC keyed with the provider's public key: what a verifier that trusts `alg` accepts.
    const pub = JSON.parse(readFileSync(keysFile, 'utf8')).keys[0];
    const input = `${b64({ ...h, alg })}.${b64(c)}`;
    console.log(`${input}.${createHmac('sha256', JSON.stringify({ kty: pub.kty, n: pub.n, e: pub.e })).update(input).digest('base64url')}`);
  } else {
    const jwk = JSON.parse(readFileSync(keysFile, 'utf8')).keys[0];
    const key = await importJWK(jwk, alg);
    console.log(await new SignJWT(c).setProtectedHeader({ ...h, alg, kid: h.kid ?? jwk.kid }).sign(key));
  }
} else {
  console.error('usage: oidc.mjs keygen FILE KID | serve PORT KEYS | sign KEYS|none ALG HEADER CLAIMS');
  process.exit(2);
}
