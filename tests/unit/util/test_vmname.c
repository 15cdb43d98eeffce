/* SPDX-License-Identifier: MIT */
/* VM names from VMM command lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/vmname.h"

/* Parses a command line written with '|' for the NUL separators. */
static void parse(const char *bars, struct vm_identity *id)
{
	char buf[512];
	size_t n = strlen(bars);

	assert_true(n < sizeof(buf));
	for (size_t i = 0; i <= n; i++)
		buf[i] = bars[i] == '|' ? '\0' : bars[i];
	assert_int_equal(vmname_parse_cmdline(buf, n, id), 0);
}

static void check(const char *bars, const char *name, const char *uuid, const char *vmm)
{
	struct vm_identity id;

	parse(bars, &id);
	if (name)
		assert_string_equal(id.name, name);
	else
		assert_null(id.name);
	if (uuid)
		assert_string_equal(id.uuid, uuid);
	else
		assert_null(id.uuid);
	assert_string_equal(id.vmm, vmm);
	vm_identity_release(&id);
}

static void test_qemu(void **state)
{
	(void)state;
	check("/usr/bin/qemu-system-x86_64|-name|web-1|-m|512", "web-1", NULL, "qemu");
	check("qemu-system-x86_64|-name|guest=db,debug-threads=on|-uuid|"
	      "0b0e8f1a-7c1e-4c5e-9d2a-2a6f5b0c1d3e",
	      "db", "0b0e8f1a-7c1e-4c5e-9d2a-2a6f5b0c1d3e", "qemu");
	check("qemu-kvm|-name|debug-threads=on,guest=later", "later", NULL, "qemu");
	check("qemu-system-x86_64|-name|a,,b,process=x", "a,b", NULL, "qemu");
	check("qemu-system-x86_64|--name=eq", "eq", NULL, "qemu");
	check("qemu-system-x86_64|-m|1G", NULL, NULL, "qemu");
	check("qemu-system-x86_64|-name", NULL, NULL, "qemu");
	check("qemu-system-x86_64|-name|guest=", NULL, NULL, "qemu");
	check("qemu-system-x86_64|-names|x", NULL, NULL, "qemu");
}

static void test_other_vmms(void **state)
{
	(void)state;
	check("/usr/local/bin/firecracker|--api-sock|/tmp/s|--id|fc-7", "fc-7", NULL,
	      "firecracker");
	check("cloud-hypervisor|--kernel|vmlinux", NULL, NULL, "cloud-hypervisor");
	check("crosvm|run|--id|x", NULL, NULL, "crosvm");
	/* Not a known VMM: no flag is taken as a name, the vmm is argv[0]'s basename. */
	check("/opt/bin/myvmm|--id|x|-name|y", NULL, NULL, "myvmm");
}

static void test_bounds(void **state)
{
	char line[1024] = "qemu-system-x86_64|-name|";
	size_t n = strlen(line);

	(void)state;
	memset(line + n, 'a', VMNAME_MAX + 1);
	line[n + VMNAME_MAX + 1] = '\0';
	check(line, NULL, NULL, "qemu");
	line[n + VMNAME_MAX] = '\0';
	struct vm_identity id;
	parse(line, &id);
	assert_int_equal(strlen(id.name), VMNAME_MAX);
	vm_identity_release(&id);

	struct vm_identity empty;
	assert_int_equal(vmname_parse_cmdline("", 0, &empty), 0);
	assert_null(empty.name);
	assert_null(empty.vmm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qemu),
		cmocka_unit_test(test_other_vmms),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
