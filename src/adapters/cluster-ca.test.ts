// The cluster CA: what it signs, what it refuses to sign, and that its certificates carry a node
// id that another CA's certificates cannot claim.
import "reflect-metadata";
import assert from "node:assert/strict";
import { webcrypto, X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import * as x509 from "@peculiar/x509";
import { limits } from "../core/limits.ts";
import {
  caDigest,
  createClusterCa,
  createNodeRequest,
  type KeyedCertificate,
  keyDigest,
  nodeCertificateFacts,
  renewNodeCertificate,
  requestKeyDigest,
  signNodeCertificate,
} from "./cluster-ca.ts";

const now = Date.parse("2026-12-01T12:00:00Z");

/** The CA signs `csrPem` for `nodeId` at `now`. */
function sign(ca: KeyedCertificate, csrPem: string, nodeId: string, names: string[] = []) {
  return signNodeCertificate({ ca, csrPem, nodeId, names, nowMs: now });
}

describe("cluster CA", () => {
  it("makes a P-256 CA whose digest is the SHA-256 of its DER", async () => {
    const ca = await createClusterCa("abc123", now);
    const certificate = new X509Certificate(ca.certPem);
    assert.equal(certificate.ca, true);
    assert.equal(certificate.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.match(caDigest(ca.certPem), /^[0-9a-f]{64}$/);
    assert.equal(
      caDigest(ca.certPem),
      certificate.fingerprint256.replaceAll(":", "").toLowerCase(),
    );
    assert.ok(Date.parse(certificate.validFrom) <= now - limits.certBackdateMs + 1000);
  });

  it("signs a node's request into a certificate naming the node, backdated, for its lifetime", async () => {
    const ca = await createClusterCa("abc123", now);
    const { csrPem } = await createNodeRequest("node1");
    const signed = await sign(ca, csrPem, "node1", ["10.0.0.5", "pi-one.local"]);
    assert.ok(signed.ok);
    const facts = nodeCertificateFacts(signed.value, ca.certPem);
    assert.ok(facts.ok);
    assert.equal(facts.value.nodeId, "node1");
    assert.equal(facts.value.notBeforeMs, now - limits.certBackdateMs);
    assert.equal(facts.value.notAfterMs, now + limits.nodeCertLifetimeMs);
    assert.match(facts.value.serial, /^[0-9a-f]+$/);
    const names = new X509Certificate(signed.value).subjectAltName ?? "";
    assert.match(names, /URI:shoal:\/\/node\/node1/);
    assert.match(names, /IP Address:10\.0\.0\.5/);
    assert.match(names, /DNS:pi-one\.local/);
  });

  it("refuses a request made for another node id", async () => {
    const ca = await createClusterCa("abc123", now);
    const { csrPem } = await createNodeRequest("intruder");
    const signed = await sign(ca, csrPem, "node1");
    assert.equal(signed.ok, false);
    assert.match(signed.ok ? "" : signed.message, /names CN=intruder/);
  });

  it("refuses a request whose signature does not match its key", async () => {
    const ca = await createClusterCa("abc123", now);
    const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
    const pair = () => webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
    const claimed = (await pair()) as webcrypto.CryptoKeyPair;
    const other = (await pair()) as webcrypto.CryptoKeyPair;
    // Claims one key and is signed by another: what a node that wants someone else's key sends.
    const request = await x509.Pkcs10CertificateRequestGenerator.create({
      name: "CN=node1",
      keys: { publicKey: claimed.publicKey, privateKey: other.privateKey },
      signingAlgorithm: algorithm,
    });
    const csrPem = request.toString("pem");
    const signed = await sign(ca, csrPem, "node1");
    assert.equal(signed.ok, false);
    assert.match(signed.ok ? "" : signed.message, /not signed by its own key/);
  });

  it("refuses garbage as a request", async () => {
    const ca = await createClusterCa("abc123", now);
    const signed = await sign(ca, "hello", "n");
    assert.deepEqual(signed.ok ? null : signed.code, "E_VALIDATION");
  });

  it("does not take a certificate of another CA for one of its own, whatever it names", async () => {
    const ours = await createClusterCa("abc123", now);
    const theirs = await createClusterCa("abc123", now);
    const { csrPem } = await createNodeRequest("node1");
    const signed = await sign(theirs, csrPem, "node1");
    assert.ok(signed.ok);
    const facts = nodeCertificateFacts(signed.value, ours.certPem);
    assert.equal(facts.ok, false);
    assert.equal(facts.ok ? null : facts.code, "E_UNAUTHORIZED");
    assert.notEqual(caDigest(ours.certPem), caDigest(theirs.certPem));
  });

  it("pins a key: the request's digest is the certificate's, and a renewal keeps it", async () => {
    const ca = await createClusterCa("abc123", now);
    const { keyPem, csrPem } = await createNodeRequest("node1");
    const signed = await sign(ca, csrPem, "node1");
    assert.ok(signed.ok);
    assert.equal(keyDigest(signed.value), requestKeyDigest(csrPem));
    const later = now + 25 * 24 * 3600_000;
    const renewed = await renewNodeCertificate({
      ca,
      keyPem,
      nodeId: "node1",
      names: [],
      nowMs: later,
    });
    assert.equal(keyDigest(renewed), keyDigest(signed.value));
    const facts = nodeCertificateFacts(renewed, ca.certPem);
    assert.ok(facts.ok);
    assert.equal(facts.value.notAfterMs, later + limits.nodeCertLifetimeMs);
    const other = await createNodeRequest("node1");
    assert.notEqual(requestKeyDigest(other.csrPem), requestKeyDigest(csrPem));
  });
});
