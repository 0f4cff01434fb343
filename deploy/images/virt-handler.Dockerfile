# The virt-handler image that deploy/23-virt-handler.yaml runs (virt-toolkit/virt-handler:v0.1.0).
# It packages a binary built on the host, so the image build needs no Rust toolchain:
#
#   cargo build --release -p virt-handler --bin virt-handler
#   docker build -f deploy/images/virt-handler.Dockerfile -t virt-toolkit/virt-handler:v0.1.0 .
#
# The runtime base has glibc. It runs as root (the DaemonSet says so too): the launchers' sockets
# and the kubelet's pod directories it connects into belong to root. Build on a glibc no newer
# than Debian 12's (2.36).
FROM gcr.io/distroless/cc-debian12
COPY target/release/virt-handler /usr/local/bin/virt-handler
USER 0:0
EXPOSE 8186
ENTRYPOINT ["/usr/local/bin/virt-handler"]
