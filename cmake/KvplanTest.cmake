# kvplan_add_test(NAME <name> LABEL <core|worker|server|e2e|gpu> SOURCES ... [LIBS ...])
#
# One GoogleTest executable whose tests are registered with ctest individually,
# labelled so that `ctest -L core` runs one tier. Tests run from the project
# root so that relative paths such as ../shared/... resolve as in the docs.
include(GoogleTest)
function(kvplan_add_test)
  cmake_parse_arguments(T "" "NAME;LABEL" "SOURCES;LIBS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main kvplan_warnings)
  target_compile_definitions(${T_NAME} PRIVATE KVPLAN_SHARED_DIR="${KVPLAN_SHARED_DIR}"
                                               KVPLAN_BINARY_DIR="${CMAKE_BINARY_DIR}")
  gtest_discover_tests(${T_NAME}
    WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}"
    PROPERTIES LABELS ${T_LABEL}
    DISCOVERY_TIMEOUT 60)
endfunction()
