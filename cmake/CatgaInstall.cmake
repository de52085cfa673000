# Installs the libraries, public headers, a CMake package and pkg-config
# files, so that `find_package(catga)` + `target_link_libraries(app
# catga::cluster)` — or `pkg-config --cflags --libs catga-cluster` — works
# from an install prefix, and describes the Debian packages `cpack -G DEB`
# builds. Tested by tests/install.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_catga_targets catga_core catga_cluster)
if(TARGET catga_http)
  list(APPEND _catga_targets catga_http)
endif()
# catga::otel is exported on its own (catga-otel-targets.cmake, loaded by
# find_package(catga COMPONENTS otel)) and packaged on its own, so that
# nothing else of an installed Catga needs OpenTelemetry.
set(_catga_libraries ${_catga_targets})
if(TARGET catga_otel)
  list(APPEND _catga_libraries catga_otel)
endif()

# ABI: 0.x releases may change it with every minor version, so the SONAME
# carries both (libcatga_cluster.so.0.1); from 1.0 on, the major only.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(CATGA_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
else()
  set(CATGA_SOVERSION ${PROJECT_VERSION_MAJOR})
endif()
# DEFINE_SYMBOL "": the objects of a shared build compile with the same
# command as a static one (nothing in the sources needs catga_*_EXPORTS), so
# ccache serves one build from the other.
set_target_properties(${_catga_libraries} PROPERTIES
  VERSION ${PROJECT_VERSION} SOVERSION ${CATGA_SOVERSION} DEFINE_SYMBOL "")
# The libraries export their API only: what include/catga/ marks CATGA_EXPORT
# (catga/export.hpp). Hidden visibility is set for static builds too — it
# changes nothing when linking an archive into a program (the tests reach
# internals that way), and it keeps the compile commands of the two builds
# the same, so ccache still serves one from the other. A shared library
# that needs a symbol another one hides fails to link, not its users.
set_target_properties(${_catga_libraries} PROPERTIES
  C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
if(BUILD_SHARED_LIBS AND CATGA_SANITIZE STREQUAL "")
  foreach(_lib IN LISTS _catga_libraries)
    target_link_options(${_lib} PRIVATE LINKER:--no-undefined)
  endforeach()
endif()
# Only catga:: is exported: the version script hides the third-party template
# code (std, Asio, RESTinio, spdlog) that visibility cannot (tests/install
# counts what is left).
if(BUILD_SHARED_LIBS)
  foreach(_lib IN LISTS _catga_targets)
    target_link_options(${_lib} PRIVATE LINKER:--version-script=${PROJECT_SOURCE_DIR}/cmake/catga-exports.map)
    set_property(TARGET ${_lib} APPEND PROPERTY LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/catga-exports.map)
  endforeach()
endif()

install(TARGETS ${_catga_targets} EXPORT catga-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/catga DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
        PATTERN otel.hpp EXCLUDE)
install(EXPORT catga-targets NAMESPACE catga:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/catga COMPONENT dev)
if(TARGET catga_otel)
  install(TARGETS catga_otel EXPORT catga-otel-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT otel_dev
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT otel NAMELINK_COMPONENT otel_dev)
  install(FILES ${PROJECT_SOURCE_DIR}/include/catga/otel.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/catga
          COMPONENT otel_dev)
  install(EXPORT catga-otel-targets NAMESPACE catga:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/catga
          COMPONENT otel_dev)
endif()

# The package config finds what the public headers need (msgpack-c's C++
# headers) and, for static libraries, what the libraries link privately.
set(CATGA_CONFIG_SHARED ${BUILD_SHARED_LIBS})
if(TARGET catga_http)
  set(CATGA_CONFIG_HTTP ON)
else()
  set(CATGA_CONFIG_HTTP OFF)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/catga-config.cmake.in
  ${PROJECT_BINARY_DIR}/catga-config.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/catga)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/catga-config-version.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/catga-config.cmake ${PROJECT_BINARY_DIR}/catga-config-version.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/catga COMPONENT dev)

# pkg-config: one file per library. Requires.private / Libs.private are what
# `pkg-config --static` adds for the static libraries.
foreach(_lib IN LISTS _catga_libraries)
  string(REPLACE "catga_" "" CATGA_PC_PART ${_lib})
  set(_component dev)
  if(_lib STREQUAL "catga_otel")
    set(_component otel_dev)
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/cmake/catga-${CATGA_PC_PART}.pc.in
                 ${PROJECT_BINARY_DIR}/pkgconfig/catga-${CATGA_PC_PART}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/catga-${CATGA_PC_PART}.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT ${_component})
endforeach()

# ---- Debian packages (cpack -G DEB in a -DBUILD_SHARED_LIBS=ON build) ----
# libcatga<SOVERSION>: the shared libraries; libcatga-dev: headers, the .so
# links, static libraries if built, CMake and pkg-config files; catga-orders:
# the example service and catgactl (components installed by examples/ and tools/catgactl/).
# With catga::otel, two more, so that nothing else needs OpenTelemetry:
# libcatga-otel<SOVERSION> (libcatga_otel.so.*) and libcatga-otel-dev
# (catga/otel.hpp, its .so link, catga-otel-targets.cmake, catga-otel.pc);
# catga-orders then links it (--trace).
set(CPACK_PACKAGE_NAME catga)
set(CPACK_PACKAGE_VENDOR "Catga for C++")
set(CPACK_PACKAGE_CONTACT "Catga for C++ maintainers <catga@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Commands, queries and events through a mediator, replicated with Raft")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_COMPONENTS_ALL runtime dev example)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libcatga${CATGA_SOVERSION})
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libcatga-dev)
set(CPACK_DEBIAN_EXAMPLE_PACKAGE_NAME catga-orders)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_EXAMPLE_PACKAGE_SECTION net)
# Runtime dependencies from the ELF files (dpkg-shlibdeps): libraft0, libuv1,
# libspdlog, libfmt, libstdc++...
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# libraft's shlibs say >= 0.20; Catga needs 0.22.1 (bookworm-backports):
# earlier versions lose entries (scripts/setup).
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "libraft0 (>= 0.22.1)")
set(CPACK_DEBIAN_EXAMPLE_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
# The example links the libraries of this build (its dependency on them is
# the explicit one below).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS
    ${PROJECT_BINARY_DIR}/src/core ${PROJECT_BINARY_DIR}/src/cluster ${PROJECT_BINARY_DIR}/src/http)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libcatga${CATGA_SOVERSION} (= ${PROJECT_VERSION}), libmsgpack-cxx-dev, libraft-dev (>= 0.22.1), libuv1-dev, libssl-dev, libspdlog-dev, libfmt-dev, librestinio-dev, nlohmann-json3-dev, libhttp-parser-dev, pkg-config")
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "libasio-dev")
set(CPACK_DEBIAN_EXAMPLE_PACKAGE_DEPENDS "libcatga${CATGA_SOVERSION} (= ${PROJECT_VERSION})")
set(CPACK_COMPONENT_EXAMPLE_DEPENDS runtime)
set(CPACK_COMPONENT_DEV_DEPENDS runtime)
if(TARGET catga_otel)
  list(APPEND CPACK_COMPONENTS_ALL otel otel_dev)
  set(CPACK_DEBIAN_OTEL_PACKAGE_NAME libcatga-otel${CATGA_SOVERSION})
  set(CPACK_DEBIAN_OTEL_DEV_PACKAGE_NAME libcatga-otel-dev)
  set(CPACK_DEBIAN_OTEL_DEV_PACKAGE_SECTION libdevel)
  set(CPACK_DEBIAN_OTEL_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_OTEL_PACKAGE_DEPENDS "libcatga${CATGA_SOVERSION} (= ${PROJECT_VERSION})")
  # opentelemetry-cpp-dev's CMake config needs abseil, gRPC and protobuf
  # (scripts/setup), which the package itself does not depend on.
  set(CPACK_DEBIAN_OTEL_DEV_PACKAGE_DEPENDS
      "libcatga-otel${CATGA_SOVERSION} (= ${PROJECT_VERSION}), libcatga-dev (= ${PROJECT_VERSION}), opentelemetry-cpp-dev (>= 1.19), libabsl-dev, libgrpc++-dev, libprotobuf-dev, protobuf-compiler-grpc")
  set(CPACK_COMPONENT_OTEL_DEPENDS runtime)
  set(CPACK_COMPONENT_OTEL_DEV_DEPENDS otel dev)
  # opentelemetry-cpp (bookworm-backports) has no shlibs file: dpkg-shlibdeps
  # cannot name it for the SDK libraries catga-orders links (--trace).
  string(APPEND CPACK_DEBIAN_EXAMPLE_PACKAGE_DEPENDS
         ", libcatga-otel${CATGA_SOVERSION} (= ${PROJECT_VERSION}), opentelemetry-cpp (>= 1.19)")
  list(APPEND CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}/src/otel)
endif()
# Only when Catga is the top-level project: one that adds Catga with
# add_subdirectory or FetchContent keeps its own CPack configuration (the
# CPACK_* variables above stay in this directory's scope).
if(PROJECT_IS_TOP_LEVEL)
  include(CPack)
endif()
