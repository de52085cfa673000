#!/usr/bin/env bash
# What an adopter does with an installed Catga, checked end to end.
#
#   check_install.sh static SOURCE_DIR BUILD_DIR WORK_DIR
#     installs BUILD_DIR (this build, static libraries) into WORK_DIR/prefix,
#     builds tests/install/consumer against it with find_package(catga) — one
#     program per library: catga::core (twice: the codec, and an in-memory
#     Application), catga::cluster, catga::http and, when BUILD_DIR built it,
#     catga::otel (find_package(catga COMPONENTS otel)) — and runs them; then
#     builds the cluster program, the in-memory one and the otel one again
#     with pkg-config --static.
#   check_install.sh shared SOURCE_DIR BUILD_DIR WORK_DIR
#     configures SOURCE_DIR with -DBUILD_SHARED_LIBS=ON (the build type and
#     CATGA_WERROR of BUILD_DIR) in BUILD_DIR-shared — beside BUILD_DIR, so
#     that the compile commands are the same and ccache serves the objects
#     of this build to that one — builds the libraries and
#     the example service, installs, checks the SONAMEs and that the
#     libraries export no internals (nm -D), builds and runs the
#     same consumers (linked to the .so files) and the pkg-config build, then
#     `cpack -G DEB` and checks the packages' names, contents and
#     dependencies: three, and libcatga-otel<SOVERSION> and libcatga-otel-dev
#     when catga::otel is built.
set -euo pipefail
mode=$1 src=$2 build=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
build_type=$(cache CMAKE_BUILD_TYPE)
otel=$(cache CATGA_WITH_OTEL)
[[ $otel == ON ]] || otel=OFF
libs=(core cluster http)
[[ $otel == ON ]] && libs+=(otel)
fail() { echo "check_install: $*" >&2; exit 1; }

if [[ $mode == shared ]]; then
  shared_build=$build-shared
  cmake -S "$src" -B "$shared_build" -G Ninja -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE="$build_type" \
    -DCATGA_WERROR="$(cache CATGA_WERROR)" -DCATGA_BUILD_TESTS=OFF -DCATGA_BUILD_BENCH=OFF \
    -DCATGA_BUILD_EXAMPLES=ON -DCATGA_WITH_OTEL=$otel -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
  cmake --build "$shared_build" --target "${libs[@]/#/catga_}" catga-orders catgactl
  build=$shared_build
fi
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name 'libcatga_core.*' -printf '%h\n' | head -n1)
[[ -n $libdir ]] || fail "no libcatga_core installed under $prefix"

if [[ $mode == shared ]]; then
  for lib in "${libs[@]}"; do
    so=$(readelf -d "$libdir/libcatga_$lib.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    [[ $so =~ ^libcatga_$lib\.so\.[0-9]+(\.[0-9]+)?$ ]] || fail "libcatga_$lib.so has SONAME '$so'"
    [[ -e $libdir/$so ]] || fail "$so is not installed"
    # Only the API is exported (hidden visibility, catga/export.hpp): no
    # internals, no C glue — except core's logger, which the other two share.
    # (Third-party templates instantiated for internal types, and the API's
    # private constructors taking them, are not internals of their own.)
    leaked=$(nm -DC --defined-only --format=posix "$libdir/libcatga_$lib.so" | sed 's/ [A-Za-z] [0-9a-f]*\( [0-9a-f]*\)\?$//' \
      | grep -E '^((typeinfo( name)?|vtable|guard variable) for )?catga::(http::)?internal::|^catga_(raft|auth|tls)_' \
      | grep -vx 'catga::internal::log()' || true)
    [[ -z $leaked ]] || fail "libcatga_$lib.so exports internals:"$'\n'"$leaked"
    # Nor third-party template code (cmake/catga-exports.map): every
    # exported name is Catga's API, its type information or its vtables (or
    # the engine factory that core finds in cluster).
    # libcatga_otel is the exception by necessity: the OpenTelemetry API is
    # header-only, and its process-wide singletons (the global tracer
    # provider, the default trace state; their guard variables) must stay
    # exported so that the provider the program installs is the one the
    # library reads; so do the std type information and the make_shared tag
    # they drag in.
    allowed='^((typeinfo( name)?|vtable|VTT|guard variable) for )?catga::|^catga_replicated_engine$'
    [[ $lib == otel ]] && allowed+='|^(guard variable for )?opentelemetry::|^typeinfo( name)? for std::|^std::_Sp_make_shared_tag::'
    foreign=$(nm -DC --defined-only --format=posix "$libdir/libcatga_$lib.so" | sed 's/ [A-Za-z] [0-9a-f]*\( [0-9a-f]*\)\?$//' \
      | grep -Ev "$allowed" || true)
    [[ -z $foreign ]] || fail "libcatga_$lib.so exports code that is not Catga's:"$'\n'"$(head -n 20 <<<"$foreign")"
    echo "libcatga_$lib.so exports $(nm -D --defined-only "$libdir/libcatga_$lib.so" | wc -l) symbols"
  done
  # ... and still the API's type information (an exception a program catches).
  nm -DC --defined-only "$libdir/libcatga_core.so" | grep -q ' typeinfo for catga::BadResultAccess$' \
    || fail "libcatga_core.so does not export the type information of catga::BadResultAccess"
fi

cmake -S "$src/tests/install/consumer" -B "$work/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCONSUMER_OTEL=$otel >/dev/null
cmake --build "$work/consumer"
"$work/consumer/consumer-core"
"$work/consumer/consumer-in-memory"
"$work/consumer/consumer" "$work/data"
"$work/consumer/consumer-http"
[[ $otel == OFF ]] || "$work/consumer/consumer-otel"
if [[ $mode == shared ]]; then
  # ldd's output is read whole first: `ldd | grep -q` fails under pipefail
  # when grep stops reading before ldd has written everything (SIGPIPE).
  deps=$(ldd "$work/consumer/consumer")
  grep -q "libcatga_cluster.so" <<<"$deps" || fail "consumer is not linked to libcatga_cluster.so"
  deps=$(ldd "$work/consumer/consumer-core")
  ! grep -q "libcatga_cluster" <<<"$deps" || fail "consumer-core pulls in libcatga_cluster"
  # An in-memory program needs neither Raft nor libuv.
  deps=$(ldd "$work/consumer/consumer-in-memory")
  ! grep -E "libcatga_cluster|libraft|libuv" <<<"$deps" || fail "consumer-in-memory pulls in the cluster's libraries"
  # Only what links catga::otel links OpenTelemetry.
  deps=$(ldd "$work/consumer/consumer")
  ! grep -E "libcatga_otel|libopentelemetry" <<<"$deps" || fail "consumer pulls in OpenTelemetry"
  if [[ $otel == ON ]]; then
    deps=$(ldd "$work/consumer/consumer-otel")
    grep -q "libcatga_otel.so" <<<"$deps" || fail "consumer-otel is not linked to libcatga_otel.so"
  fi
fi

# pkg-config, as a Makefile would use it (the .pc files name the install
# prefix they were configured for; point them at this one).
export PKG_CONFIG_PATH=$libdir/pkgconfig
static=()
[[ $mode == static ]] && static=(--static)
flags=$(pkg-config "${static[@]}" --define-variable=prefix="$prefix" --cflags --libs catga-cluster) \
  || fail "pkg-config catga-cluster failed"
# shellcheck disable=SC2086
c++ -std=c++20 -o "$work/consumer-pc" "$src/tests/install/consumer/main.cc" $flags
LD_LIBRARY_PATH=$libdir "$work/consumer-pc" "$work/data-pc"
flags=$(pkg-config "${static[@]}" --define-variable=prefix="$prefix" --cflags --libs catga-core) \
  || fail "pkg-config catga-core failed"
# shellcheck disable=SC2086
c++ -std=c++20 -o "$work/consumer-in-memory-pc" "$src/tests/install/consumer/in_memory.cc" $flags
LD_LIBRARY_PATH=$libdir "$work/consumer-in-memory-pc"
if [[ $otel == ON ]]; then
  # The SDK and its in-memory exporter are the program's own (the exporter has no .pc file).
  flags=$(pkg-config "${static[@]}" --define-variable=prefix="$prefix" --cflags --libs catga-otel opentelemetry_trace) \
    || fail "pkg-config catga-otel failed"
  # shellcheck disable=SC2086
  c++ -std=c++20 -o "$work/consumer-otel-pc" "$src/tests/install/consumer/otel.cc" $flags -lopentelemetry_exporter_in_memory
  LD_LIBRARY_PATH=$libdir "$work/consumer-otel-pc"
fi

if [[ $mode == shared ]]; then
  rm -f "$build"/*.deb
  (cd "$build" && cpack -G DEB >/dev/null) || fail "cpack -G DEB failed"
  debs=("$build"/*.deb)
  expected=3
  [[ $otel == ON ]] && expected=5
  [[ ${#debs[@]} -eq $expected ]] || fail "expected $expected packages, got: ${debs[*]}"
  for deb in "${debs[@]}"; do
    name=$(dpkg-deb -f "$deb" Package)
    contents=$(dpkg-deb -c "$deb")
    depends=$(dpkg-deb -f "$deb" Depends)
    echo "$name: Depends: $depends"
    case $name in
      libcatga-otel-dev) grep -q 'include/catga/otel.hpp' <<<"$contents" || fail "$name lacks catga/otel.hpp"
                         grep -q 'cmake/catga/catga-otel-targets.cmake' <<<"$contents" || fail "$name lacks the CMake targets"
                         grep -q 'pkgconfig/catga-otel.pc' <<<"$contents" || fail "$name lacks catga-otel.pc"
                         grep -q 'libcatga_otel.so ->' <<<"$contents" || fail "$name lacks the libcatga_otel.so link"
                         grep -q 'opentelemetry-cpp-dev' <<<"$depends" || fail "$name does not depend on opentelemetry-cpp-dev" ;;
      # OpenTelemetry's API is header-only: the library needs no OpenTelemetry
      # library at run time (the program brings the SDK it chose).
      libcatga-otel*) grep -q 'libcatga_otel.so.' <<<"$contents" || fail "$name lacks libcatga_otel.so.*"
                      grep -q 'libcatga[0-9.]* (=' <<<"$depends" || fail "$name does not depend on the library package" ;;
      libcatga*-dev) ! grep -q 'otel' <<<"$contents" || fail "$name carries catga::otel files"
                     grep -q 'include/catga/application.hpp' <<<"$contents" || fail "$name lacks the headers"
                     grep -q 'cmake/catga/catga-config.cmake' <<<"$contents" || fail "$name lacks the CMake package"
                     grep -q 'pkgconfig/catga-http.pc' <<<"$contents" || fail "$name lacks the pkg-config files"
                     grep -q 'libmsgpack-cxx-dev' <<<"$depends" || fail "$name does not depend on msgpack" ;;
      libcatga*) grep -q 'libcatga_cluster.so.' <<<"$contents" || fail "$name lacks libcatga_cluster.so.*"
                 ! grep -q 'opentelemetry' <<<"$depends" || fail "$name depends on OpenTelemetry"
                 grep -q "libraft0 (>= 0.22.1)" <<<"$depends" || fail "$name does not depend on libraft0 >= 0.22.1"
                 grep -q 'libuv1' <<<"$depends" || fail "$name does not depend on libuv1" ;;
      catga-orders) grep -q 'usr/bin/catga-orders' <<<"$contents" || fail "$name lacks the binary"
                    grep -q 'usr/bin/catgactl' <<<"$contents" || fail "$name lacks catgactl"
                    grep -q 'libcatga' <<<"$depends" || fail "$name does not depend on the library package"
                    [[ $otel == OFF ]] || grep -q 'opentelemetry-cpp' <<<"$depends" \
                      || fail "$name does not depend on opentelemetry-cpp (--trace)" ;;
      *) fail "unexpected package $name" ;;
    esac
  done
fi
echo "check_install $mode: ok"
