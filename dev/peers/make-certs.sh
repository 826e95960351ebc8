#!/usr/bin/env bash
# Throw-away PKI for TLS tests (RFC 5425): a CA, a server certificate for
# localhost/127.0.0.1 and a client certificate whose CN (and DNS SAN) is a tenant id.
#
#   make-certs.sh <dir> [client-cn]      (client-cn default: acme)
#
# Writes ca.pem ca.key server.pem server.key client.pem client.key (RSA 2048,
# valid 30 days). Idempotent: existing files are kept.
set -euo pipefail
D=$1 CN=${2:-acme}
mkdir -p "$D" && cd "$D"
[ -s ca.pem ] && [ -s server.pem ] && [ -s client.pem ] && exit 0
o() { openssl "$@" 2>/dev/null; }
o req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=meniscus-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout ca.key -out ca.pem
o req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >server.ext
o x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext -out server.pem
o req -newkey rsa:2048 -nodes -subj "/CN=$CN" -keyout client.key -out client.csr
printf 'subjectAltName=DNS:%s\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' "$CN" >client.ext
o x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out client.pem
rm -f ./*.csr ./*.ext ca.srl
chmod 600 ./*.key
echo "$PWD"
