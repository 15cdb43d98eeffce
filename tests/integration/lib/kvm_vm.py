"""VMs made by the test process itself (only a VM's creator can make its stats fds)."""

import fcntl
import os
import threading

KVM_CREATE_VM, KVM_CREATE_VCPU, KVM_GET_STATS_FD = 0xAE01, 0xAE41, 0xAECE


class PyVM:
    """A VM of this process with its vCPUs and their stats fds; never run."""

    def __init__(self, vcpus):
        self.kvm = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)
        self.vm = fcntl.ioctl(self.kvm, KVM_CREATE_VM, 0)
        self.vcpus = [fcntl.ioctl(self.vm, KVM_CREATE_VCPU, i) for i in range(vcpus)]
        self.stats = {'vm': fcntl.ioctl(self.vm, KVM_GET_STATS_FD, 0)}
        for i, v in enumerate(self.vcpus):
            self.stats[f'vcpu:{i}'] = fcntl.ioctl(v, KVM_GET_STATS_FD, 0)

    def add_vcpu_in_thread(self, index):
        """A vCPU made by another thread, as QEMU does: its id says kvm-<tid>/vcpu-N."""
        def make():
            self.vcpus.append(fcntl.ioctl(self.vm, KVM_CREATE_VCPU, index))
            self.stats[f'vcpu:{index}'] = fcntl.ioctl(self.vcpus[-1], KVM_GET_STATS_FD, 0)
        t = threading.Thread(target=make)
        t.start()
        t.join()

    def fds(self, roles):
        return [self.stats[r] for r in roles]

    def close(self):
        for fd in [*self.stats.values(), *self.vcpus, self.vm, self.kvm]:
            os.close(fd)
