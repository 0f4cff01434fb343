# The virt-controller image that deploy/20-virt-controller.yaml runs
# (virt-toolkit/virt-controller:v0.1.0). It packages a binary built on the host, so the image
# build needs no Rust toolchain:
#
#   cargo build --release -p virt-controller --bin virt-controller
#   docker build -f deploy/images/virt-controller.Dockerfile -t virt-toolkit/virt-controller:v0.1.0 .
#
# The runtime base has glibc and CA certificates, and runs as the non-root user 65532 that the
# Deployment's securityContext expects. Build on a glibc no newer than Debian 12's (2.36).
# The binary links no API server: localkube is only in virt-playground.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY target/release/virt-controller /usr/local/bin/virt-controller
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/virt-controller"]
CMD ["run"]
