# The operator image against the real control plane of tests/cluster/ (fixture cluster_up, state in
# ${CMAKE_BINARY_DIR}/tests/cluster/state). Included by CMakeLists.txt only where tests/cluster/
# exists, since that fixture lives there.
add_test(NAME images_operator_cluster_test
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/operator_cluster_test.sh
         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(images_operator_cluster_test PROPERTIES
  FIXTURES_REQUIRED "images_cpu;cluster_up" LABELS "images;cluster" TIMEOUT 600
  RESOURCE_LOCK tandem_cluster
  ENVIRONMENT "TANDEM_SOURCE_DIR=${CMAKE_SOURCE_DIR};TANDEM_BINARY_DIR=${CMAKE_BINARY_DIR};TANDEM_BIN_DIR=${CMAKE_BINARY_DIR}/bin;TANDEM_CLUSTER_STATE=${CMAKE_BINARY_DIR}/tests/cluster/state")
