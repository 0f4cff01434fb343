# The virt-api image that deploy/21-virt-api.yaml runs (virt-toolkit/virt-api:v0.1.0). It
# packages a binary built on the host, so the image build needs no Rust toolchain:
#
#   cargo build --release -p virt-api --bin virt-api
#   docker build -f deploy/images/virt-api.Dockerfile -t virt-toolkit/virt-api:v0.1.0 .
#
# The runtime base has glibc and CA certificates, and runs as the non-root user 65532 that the
# Deployment's securityContext expects. Build on a glibc no newer than Debian 12's (2.36).
# The serving certificate is not in the image: the Deployment mounts the Secret that
# deploy/certs.sh writes.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY target/release/virt-api /usr/local/bin/virt-api
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/virt-api"]
