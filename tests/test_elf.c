/* The shared library's dynamic linking surface, read from its ELF64 file
 * (argv[1], $<TARGET_FILE:vkformer>) with a small parser of its own:
 * - no DT_NEEDED entry names libvulkan (the loader is opened at run time, so
 *   the library loads on machines without Vulkan);
 * - every exported (defined, global, default-visibility) dynamic symbol is
 *   vkf_*, the API is there, and no vk* symbol is exported or imported
 *   (volk's function pointers stay internal). */
#include "test_util.h"

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_path;
static unsigned char *g_file;
static size_t g_size;

static void load(void) {
  FILE *f = fopen(g_path, "rb");
  if (!f)
    fail_msg("cannot open %s", g_path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  assert_true(n > (long)sizeof(Elf64_Ehdr));
  g_size = (size_t)n;
  g_file = malloc(g_size);
  assert_non_null(g_file);
  assert_int_equal(fread(g_file, 1, g_size, f), g_size);
  fclose(f);
}

/* A bounds-checked pointer into the file. */
static const void *at(uint64_t off, uint64_t len) {
  if (off > g_size || len > g_size - off)
    fail_msg("%s: offset %llu + %llu is outside the file (%zu bytes)", g_path,
             (unsigned long long)off, (unsigned long long)len, g_size);
  return g_file + off;
}

static const Elf64_Ehdr *header(void) {
  const Elf64_Ehdr *eh = at(0, sizeof(Elf64_Ehdr));
  assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
  assert_int_equal(eh->e_ident[EI_CLASS], ELFCLASS64);
  assert_int_equal(eh->e_ident[EI_DATA], ELFDATA2LSB); /* this parser reads little-endian */
  assert_int_equal(eh->e_type, ET_DYN);
  assert_int_equal(eh->e_phentsize, sizeof(Elf64_Phdr));
  assert_int_equal(eh->e_shentsize, sizeof(Elf64_Shdr));
  return eh;
}

/* File offset of a virtual address, through the PT_LOAD segments. */
static uint64_t vaddr_to_offset(const Elf64_Ehdr *eh, uint64_t va) {
  const Elf64_Phdr *ph = at(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr));
  for (unsigned i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && va >= ph[i].p_vaddr && va < ph[i].p_vaddr + ph[i].p_filesz)
      return va - ph[i].p_vaddr + ph[i].p_offset;
  fail_msg("address 0x%llx is in no PT_LOAD segment", (unsigned long long)va);
  return 0;
}

static const char *str_at(uint64_t strtab_off, uint64_t strsz, uint64_t idx) {
  if (idx >= strsz)
    fail_msg("string index %llu past the table (%llu)", (unsigned long long)idx,
             (unsigned long long)strsz);
  const char *s = at(strtab_off + idx, 1);
  if (!memchr(s, 0, strsz - idx))
    fail_msg("unterminated string");
  return s;
}

typedef struct dyn_info {
  uint64_t strtab_off, strsz, symtab_va;
  const char *needed[64];
  unsigned n_needed;
  const char *soname;
} dyn_info;

static dyn_info read_dynamic(const Elf64_Ehdr *eh) {
  const Elf64_Phdr *ph = at(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr));
  const Elf64_Phdr *dynph = NULL;
  for (unsigned i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_DYNAMIC)
      dynph = &ph[i];
  if (!dynph)
    fail_msg("%s has no PT_DYNAMIC segment", g_path);
  const Elf64_Dyn *dyn = at(dynph->p_offset, dynph->p_filesz);
  size_t n = dynph->p_filesz / sizeof(Elf64_Dyn);
  dyn_info d = {0};
  uint64_t strtab_va = 0, soname_idx = UINT64_MAX;
  uint64_t needed_idx[64];
  for (size_t i = 0; i < n && dyn[i].d_tag != DT_NULL; i++) {
    switch (dyn[i].d_tag) {
    case DT_STRTAB:
      strtab_va = dyn[i].d_un.d_ptr;
      break;
    case DT_STRSZ:
      d.strsz = dyn[i].d_un.d_val;
      break;
    case DT_SYMTAB:
      d.symtab_va = dyn[i].d_un.d_ptr;
      break;
    case DT_SONAME:
      soname_idx = dyn[i].d_un.d_val;
      break;
    case DT_NEEDED:
      assert_true(d.n_needed < 64);
      needed_idx[d.n_needed++] = dyn[i].d_un.d_val;
      break;
    default:
      break;
    }
  }
  assert_true(strtab_va != 0 && d.strsz > 0 && d.symtab_va != 0);
  d.strtab_off = vaddr_to_offset(eh, strtab_va);
  for (unsigned i = 0; i < d.n_needed; i++)
    d.needed[i] = str_at(d.strtab_off, d.strsz, needed_idx[i]);
  if (soname_idx != UINT64_MAX)
    d.soname = str_at(d.strtab_off, d.strsz, soname_idx);
  return d;
}

static void test_no_libvulkan_needed(void **state) {
  (void)state;
  const Elf64_Ehdr *eh = header();
  dyn_info d = read_dynamic(eh);
  assert_true(d.n_needed >= 1); /* libc at least: the parser found the entries */
  bool libc = false;
  for (unsigned i = 0; i < d.n_needed; i++) {
    fprintf(stderr, "  DT_NEEDED %s\n", d.needed[i]);
    if (strstr(d.needed[i], "libvulkan"))
      fail_msg("%s needs %s: it must load Vulkan at run time", g_path, d.needed[i]);
    libc = libc || strncmp(d.needed[i], "libc.so", 7) == 0;
  }
  assert_true(libc);
  assert_non_null(d.soname);
  assert_string_equal(d.soname, "libvkformer.so.0");
}

static void test_exported_symbols(void **state) {
  (void)state;
  const Elf64_Ehdr *eh = header();
  dyn_info d = read_dynamic(eh);
  /* the dynamic symbol table, located by its section, checked against
   * DT_SYMTAB */
  const Elf64_Shdr *sh = at(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr));
  const Elf64_Shdr *dynsym = NULL;
  for (unsigned i = 0; i < eh->e_shnum; i++)
    if (sh[i].sh_type == SHT_DYNSYM)
      dynsym = &sh[i];
  assert_non_null(dynsym);
  assert_int_equal(dynsym->sh_addr, d.symtab_va);
  assert_int_equal(dynsym->sh_entsize, sizeof(Elf64_Sym));
  assert_true(dynsym->sh_link < eh->e_shnum);
  assert_int_equal(sh[dynsym->sh_link].sh_offset, d.strtab_off);
  size_t n = dynsym->sh_size / sizeof(Elf64_Sym);
  const Elf64_Sym *syms = at(dynsym->sh_offset, dynsym->sh_size);
  static const char *const api[] = {"vkf_context_create", "vkf_context_destroy",
                                    "vkf_tensor_create",  "vkf_enumerate_devices",
                                    "vkf_softmax",        "vkf_vulkan_tensor_buffer",
                                    "vkf_status_name"};
  bool found[VKFT_ARRAY_LEN(api)] = {false};
  unsigned exported = 0, bad = 0;
  for (size_t i = 1; i < n; i++) {
    const Elf64_Sym *s = &syms[i];
    const char *name = str_at(d.strtab_off, d.strsz, s->st_name);
    unsigned bind = ELF64_ST_BIND(s->st_info), vis = ELF64_ST_VISIBILITY(s->st_other);
    bool defined = s->st_shndx != SHN_UNDEF;
    bool vk = strncmp(name, "vk", 2) == 0 && strncmp(name, "vkf_", 4) != 0;
    if (vk) {
      fprintf(stderr, "  %s symbol %s\n", defined ? "exports" : "imports", name);
      bad++;
    }
    if (!defined || (bind != STB_GLOBAL && bind != STB_WEAK) || vis != STV_DEFAULT)
      continue;
    exported++;
    if (strncmp(name, "vkf_", 4) != 0) {
      fprintf(stderr, "  exports non-API symbol %s\n", name);
      bad++;
    }
    for (size_t k = 0; k < VKFT_ARRAY_LEN(api); k++)
      found[k] = found[k] || strcmp(name, api[k]) == 0;
  }
  fprintf(stderr, "  %u exported symbols\n", exported);
  for (size_t k = 0; k < VKFT_ARRAY_LEN(api); k++)
    if (!found[k])
      fail_msg("%s does not export %s", g_path, api[k]);
  assert_int_equal(bad, 0);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s path/to/libvkformer.so\n", argv[0]);
    return 2;
  }
  g_path = argv[1];
  load();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_libvulkan_needed),
      cmocka_unit_test(test_exported_symbols),
  };
  int r = cmocka_run_group_tests_name("elf", tests, NULL, NULL);
  free(g_file);
  return r;
}
