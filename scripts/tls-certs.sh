#!/bin/sh
# Throwaway TLS material for a local cluster (benchmarks, demos): a CA and
# one certificate for 127.0.0.1/localhost signed by it, all in DIR.
#   scripts/tls-certs.sh DIR   ->  DIR/ca.pem DIR/node.pem DIR/node.key
# Never use these in production: the CA key is left next to them.
set -eu
dir=${1:?usage: tls-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=meshq test CA" \
    -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout node.key -out node.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > node.ext
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile node.ext -out node.pem 2>/dev/null
rm -f node.csr node.ext ca.srl
chmod 600 node.key ca.key
