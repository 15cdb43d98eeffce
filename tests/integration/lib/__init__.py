"""Helpers shared by the integration tests, one module per concern.

The tests import from here, never from one another: a helper lives in one
place:
- kvm_common: the exporter process, the KVM fixture, the exposition parser
  and the translation oracle;
- kvm_vm: VMs of the test process; fleet: many VMs and the exporters that
  watch them, for the robustness tests and benchmarks;
- handoff_oracle: what hand-off VMs must look like; standin: a Python
  hand-off server;
- qemu: the QEMU process and its QMP monitor;
- prometheus: a real Prometheus server and its API;
- web_tls: the exporter behind a web config, its PKI, bcrypt hashes, curl;
- vhost_user: vhost-user framing and the tests' own frontend and backends;
- net: loopback ports; wait: bounded polling.
"""
