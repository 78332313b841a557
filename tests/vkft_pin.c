/* Keeps Vulkan driver and layer libraries loaded for the whole process when
 * VKFT_PIN_LIBS names them (colon-separated), as the sanitizer build's test
 * environment does (tests/CMakeLists.txt).
 *
 * The Vulkan loader dlcloses the driver (lavapipe) and the validation layer
 * when the last instance is destroyed. Memory those libraries keep in their
 * globals is then reported by LeakSanitizer with "<unknown module>" frames,
 * which no suppression can name and which hide whether our own code leaks.
 * Opening them once more with RTLD_NODELETE keeps them mapped, so their
 * globals stay visible and any leak they really have is attributed to them
 * (and suppressed by name in tests/lsan.supp). Linked into every test as an
 * object, so the constructor always runs. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((constructor)) static void vkft_pin_libraries(void) {
  const char *list = getenv("VKFT_PIN_LIBS");
  if (!list || !*list)
    return;
  char buf[1024];
  snprintf(buf, sizeof(buf), "%s", list);
  char *save = NULL;
  for (char *p = strtok_r(buf, ":", &save); p; p = strtok_r(NULL, ":", &save))
    if (!dlopen(p, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE))
      fprintf(stderr, "note: VKFT_PIN_LIBS: cannot open %s: %s\n", p, dlerror());
}
