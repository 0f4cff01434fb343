# The virt-launcher image that every launcher Pod runs. Its name is not in deploy/: virt-controller
# writes it into each Pod it creates (virt_reconciler::vmi::LAUNCHER_IMAGE), so the tag must be
# exactly virt-toolkit/virt-launcher:v0.1.0. It packages binaries built on the host, so the image
# build needs no Rust toolchain:
#
#   cargo build --release -p virt-launcher --bin virt-launcher --bin virt-tail
#   docker build -f deploy/images/virt-launcher.Dockerfile -t virt-toolkit/virt-launcher:v0.1.0 .
#
# The Pod runs /usr/bin/virt-launcher (container `compute`) and /usr/bin/virt-tail (container
# `guest-console-log`). The launcher starts qemu-system-x86_64 from the PATH: Debian 12's QEMU 7.2,
# with SeaBIOS (its firmware) and libslirp (the guest's user-mode network) from its dependencies.
# The cloud-init seed disk is written by the launcher itself, so no mkfs tools. It runs as root,
# as the Pod (which sets no user) leaves it: its command socket goes into the node's
# /var/run/kubevirt/sockets, a hostPath that root owns. Build on a glibc no newer than Debian 12's.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends qemu-system-x86 \
 && rm -rf /var/lib/apt/lists/*
COPY target/release/virt-launcher /usr/bin/virt-launcher
COPY target/release/virt-tail /usr/bin/virt-tail
ENTRYPOINT ["/usr/bin/virt-launcher"]
