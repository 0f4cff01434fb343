//! KubeVirt API types, lifecycle rules and controller loops (arrive with their own issue).
