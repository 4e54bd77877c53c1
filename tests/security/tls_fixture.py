"""Test PKI made with the openssl CLI: a CA, a server certificate for the admin
port, client certificates with chosen common names, and a second (rogue) CA."""

import os
import subprocess


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ec_key_and_csr(cwd, name, cn):
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
             cwd=cwd)
    os.chmod(os.path.join(cwd, f"{name}.key"), 0o600)


class Pki:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self._ca("ca", "PPE test CA")
        self._ca("rogue-ca", "Rogue CA")
        # The admin port's certificate: names ppectl can verify with --tls-server-name
        # or by the address it dials.
        self.server = self._leaf("server", "ppe-admin.test", "ca",
                                 "subjectAltName=DNS:ppe-admin.test,DNS:localhost,IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, cn):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                 "-subj", f"/CN={cn}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)

    def _leaf(self, name, cn, ca, extensions):
        _ec_key_and_csr(self.dir, name, cn)
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write(extensions)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.pem", cwd=self.dir)
        return self.path(f"{name}.pem"), self.path(f"{name}.key")

    def client(self, name, cn, ca="ca"):
        """(cert, key) of a client certificate with common name `cn`, signed by `ca`."""
        return self._leaf(name, cn, ca, "extendedKeyUsage=clientAuth\n")
