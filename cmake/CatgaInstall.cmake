# Installs the libraries, public headers and a CMake package so that
# `find_package(catga)` + `target_link_libraries(app catga::cluster)` works
# from an install prefix (tested by tests/install).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_catga_targets catga_core catga_cluster)
if(TARGET catga_http)
  list(APPEND _catga_targets catga_http)
endif()

install(TARGETS ${_catga_targets} EXPORT catga-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/catga DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT catga-targets NAMESPACE catga:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/catga)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/catga-config.cmake.in
  ${PROJECT_BINARY_DIR}/catga-config.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/catga)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/catga-config-version.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/catga-config.cmake ${PROJECT_BINARY_DIR}/catga-config-version.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/catga)
