// The cluster's certificate authority and the certificates it signs: one per node, naming the
// node's id. Keys are ECDSA P-256 (browsers refuse Ed25519 server certificates, and the API's
// HTTPS uses these too), made by the runtime's WebCrypto; @peculiar/x509 writes the ASN.1.
// Reading a certificate back uses node:crypto's X509Certificate.
import "reflect-metadata";
import { createHash, createPublicKey, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";
import { fail, ok, type Result } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { nodeIdOfNames, nodeUriPrefix } from "../core/node-names.ts";

x509.cryptoProvider.set(webcrypto as never);

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** A certificate and its private key, both PEM. */
export interface KeyedCertificate {
  certPem: string;
  keyPem: string;
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join("\n")}\n-----END PRIVATE KEY-----\n`;
}

async function importPrivateKey(pem: string): Promise<webcrypto.CryptoKey> {
  const body = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  return webcrypto.subtle.importKey("pkcs8", Buffer.from(body, "base64"), algorithm, false, [
    "sign",
  ]);
}

/** A positive serial of 16 random bytes (RFC 5280 allows 20; the top bit clear keeps it positive). */
function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString("hex");
}

/** The SHA-256 of the CA certificate's DER, in hex: what a join token pins. */
export function caDigest(caPem: string): string {
  return createHash("sha256").update(new X509Certificate(caPem).raw).digest("hex");
}

/** A new CA for `clusterId`, valid for limits.caLifetimeMs from a little before `nowMs`. */
export async function createClusterCa(clusterId: string, nowMs: number): Promise<KeyedCertificate> {
  const keys = await newKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: `CN=shoal cluster ${clusterId}, O=shoal`,
    notBefore: new Date(nowMs - limits.certBackdateMs),
    notAfter: new Date(nowMs + limits.caLifetimeMs),
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: certificate.toString("pem"), keyPem: await privateKeyPem(keys.privateKey) };
}

/** A node's new key and its certificate request naming `nodeId`. */
export async function createNodeRequest(
  nodeId: string,
): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await newKeys();
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${nodeId}`,
    keys,
    signingAlgorithm: algorithm,
  });
  return { keyPem: await privateKeyPem(keys.privateKey), csrPem: request.toString("pem") };
}

/** What a node's certificate says. */
export interface NodeCertificateFacts {
  nodeId: string;
  serial: string;
  notBeforeMs: number;
  notAfterMs: number;
}

export interface SignRequest {
  ca: KeyedCertificate;
  csrPem: string;
  /** The id the certificate names; a request made for another id is refused. */
  nodeId: string;
  /** Addresses and host names the node answers on (the API's HTTPS checks them). */
  names: readonly string[];
  nowMs: number;
  lifetimeMs?: number;
}

/** Parses and checks a request: well-formed, self-signed by its key, naming `nodeId`. */
async function checkedRequest(
  csrPem: string,
  nodeId: string,
): Promise<Result<x509.Pkcs10CertificateRequest>> {
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    return fail("E_VALIDATION", "the certificate request is not a PEM PKCS#10 request");
  }
  if (request.publicKey.algorithm.name !== "ECDSA") {
    return fail("E_VALIDATION", "the certificate request's key is not ECDSA P-256");
  }
  if (!(await request.verify())) {
    return fail("E_VALIDATION", "the certificate request is not signed by its own key");
  }
  if (request.subject !== `CN=${nodeId}`) {
    return fail(
      "E_VALIDATION",
      `the certificate request names ${request.subject}, not CN=${nodeId}`,
    );
  }
  return ok(request);
}

function alternativeNames(nodeId: string, names: readonly string[]): x509.JsonGeneralNames {
  const general: x509.JsonGeneralNames = [{ type: "url", value: `${nodeUriPrefix}${nodeId}` }];
  for (const name of new Set(names)) {
    general.push({ type: isIP(name) === 0 ? "dns" : "ip", value: name });
  }
  return general;
}

/** Signs a node's request with the CA: a certificate for both ends of TLS, naming the node. */
export async function signNodeCertificate(request: SignRequest): Promise<Result<string>> {
  const checked = await checkedRequest(request.csrPem, request.nodeId);
  if (!checked.ok) return checked;
  return ok(await certify(request, checked.value.publicKey));
}

/**
 * A new certificate for the key a node already has (`keyPem`): its renewal. The key stays, so
 * what other members pinned of it (`keyDigest`) stays true.
 */
export async function renewNodeCertificate(
  request: Omit<SignRequest, "csrPem"> & { keyPem: string },
): Promise<string> {
  const spki = createPublicKey(request.keyPem).export({ type: "spki", format: "der" });
  const publicKey = await webcrypto.subtle.importKey("spki", spki, algorithm, true, ["verify"]);
  return certify(request, new x509.PublicKey(await webcrypto.subtle.exportKey("spki", publicKey)));
}

/** The SHA-256 of a certificate's public key (its SPKI), hex: what the store pins per node. */
export function keyDigest(certificate: string | Buffer): string {
  const spki = new X509Certificate(certificate).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("hex");
}

/** The SHA-256 of a certificate request's public key, hex. */
export function requestKeyDigest(csrPem: string): string {
  const request = new x509.Pkcs10CertificateRequest(csrPem);
  return createHash("sha256").update(Buffer.from(request.publicKey.rawData)).digest("hex");
}

async function certify(
  request: Omit<SignRequest, "csrPem">,
  publicKey: x509.PublicKey,
): Promise<string> {
  const caCertificate = new x509.X509Certificate(request.ca.certPem);
  const lifetimeMs = request.lifetimeMs ?? limits.nodeCertLifetimeMs;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: `CN=${request.nodeId}`,
    issuer: caCertificate.subject,
    notBefore: new Date(request.nowMs - limits.certBackdateMs),
    notAfter: new Date(request.nowMs + lifetimeMs),
    signingKey: await importPrivateKey(request.ca.keyPem),
    publicKey,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension(alternativeNames(request.nodeId, request.names)),
      await x509.AuthorityKeyIdentifierExtension.create(caCertificate),
    ],
  });
  return certificate.toString("pem");
}

/**
 * What a node certificate says, checked against the CA: issued by it, signature valid, naming a
 * node. Validity in time is left to the caller (it has the clock).
 */
export function nodeCertificateFacts(certPem: string, caPem: string): Result<NodeCertificateFacts> {
  let certificate: X509Certificate;
  let ca: X509Certificate;
  try {
    certificate = new X509Certificate(certPem);
    ca = new X509Certificate(caPem);
  } catch {
    return fail("E_VALIDATION", "not a PEM certificate");
  }
  if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) {
    return fail("E_UNAUTHORIZED", "the certificate is not signed by this cluster's CA");
  }
  const nodeId = nodeIdOfNames(certificate.subjectAltName);
  if (!nodeId) return fail("E_VALIDATION", "the certificate names no shoal node");
  return ok({
    nodeId,
    serial: certificate.serialNumber.toLowerCase(),
    notBeforeMs: Date.parse(certificate.validFrom),
    notAfterMs: Date.parse(certificate.validTo),
  });
}

/**
 * A certificate of a CA made for it alone: what a node serves before it belongs to a cluster. No
 * member trusts it, so nothing but health and joining answers through it.
 */
export async function temporaryIdentity(
  nodeId: string,
  nowMs: number,
): Promise<{ certPem: string; keyPem: string; caPem: string }> {
  const ca = await createClusterCa(`${nodeId}-unjoined`, nowMs);
  const { keyPem, csrPem } = await createNodeRequest(nodeId);
  const signed = await signNodeCertificate({ ca, csrPem, nodeId, names: [], nowMs });
  if (!signed.ok) throw new Error(signed.message);
  return { certPem: signed.value, keyPem, caPem: ca.certPem };
}
