#!/bin/sh
# Installs a vkformer build into a temporary prefix and builds and runs a
# consumer against it three ways: find_package with vkformer::vkformer, with
# vkformer::vkformer_static, and pkg-config. Also checks that the static
# library's global symbols are only vkf_* (volk's vk* pointers localised).
#
# usage: run.sh BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR CMAKE CC NM [EXTRA_CFLAGS]
set -eu
build=$1 src=$2 work=$3 cmake=$4 cc=$5 nm=$6 extra=${7:-}
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

echo "== install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log"
lib=$(dirname "$(find "$prefix" -name libvkformer.a | head -n 1)")
test -f "$lib/libvkformer.a" || { echo "no libvkformer.a installed"; exit 1; }
test -f "$lib/pkgconfig/vkformer.pc" || { echo "no vkformer.pc installed"; exit 1; }

echo "== static library symbols"
defined=$("$nm" -g --defined-only "$lib/libvkformer.a" | awk 'NF == 3 {print $3}')
test -n "$defined" || { echo "nm found no global symbols"; exit 1; }
bad=$(printf '%s\n' "$defined" | grep -v '^vkf_' || true)
if [ -n "$bad" ]; then
  echo "global symbols other than vkf_* in libvkformer.a:"; printf '%s\n' "$bad" | head -20; exit 1
fi
printf '%s\n' "$defined" | grep -qx vkf_context_create || { echo "vkf_context_create missing"; exit 1; }
undef_vk=$("$nm" -u "$lib/libvkformer.a" | awk '$1 == "U" {print $2}' | grep '^vk' | grep -v '^vkf_' || true)
if [ -n "$undef_vk" ]; then
  echo "libvkformer.a needs vk* symbols from outside:"; printf '%s\n' "$undef_vk" | head; exit 1
fi
echo "$(printf '%s\n' "$defined" | wc -l) global symbols, all vkf_*"

echo "== find_package"
"$cmake" -S "$src" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" -DCMAKE_BUILD_TYPE=Release \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
"$cmake" --build "$work/cmake" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/cmake/consumer_shared"
"$work/cmake/consumer_static"
if [ -x "$work/cmake/consumer_static_vulkan" ]; then
  "$work/cmake/consumer_static_vulkan"
else
  echo "(no system Vulkan loader to link beside the static library)"
fi
# the shared consumer runs the installed library, not the build tree's
if command -v ldd >/dev/null 2>&1; then
  ldd "$work/cmake/consumer_shared" | grep libvkformer | grep -q "$prefix" ||
    { echo "consumer_shared does not use $prefix"; ldd "$work/cmake/consumer_shared"; exit 1; }
fi

echo "== pkg-config"
export PKG_CONFIG_PATH="$lib/pkgconfig"
unset PKG_CONFIG_LIBDIR || true
cflags=$(pkg-config --cflags vkformer)
libs=$(pkg-config --libs vkformer)
# shellcheck disable=SC2086
"$cc" $extra -std=c11 -DCONSUMER_KIND='"pkg-config"' $cflags "$src/main.c" -o "$work/consumer_pc" \
  $libs -lm -ldl -Wl,-rpath,"$lib"
"$work/consumer_pc"
static_libs=$(pkg-config --static --libs vkformer | sed 's/-lvkformer\b/-l:libvkformer.a/')
# shellcheck disable=SC2086
"$cc" $extra -std=c11 -DVKF_STATIC -DCONSUMER_KIND='"pkg-config-static"' $cflags "$src/main.c" \
  -o "$work/consumer_pc_static" $static_libs -lm -ldl
"$work/consumer_pc_static"
echo "== all consumers ok"
