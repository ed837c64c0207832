# Chart tests against the real control plane of issue 11 (fixture cluster_up: its state folder
# holds env.sh, which exports KUBECONFIG and a PATH with kubectl). helm test needs nodes that run
# containers (kwok nodes do not), so the lifecycle test runs it only with TANDEM_CLUSTER_RUNS_PODS=1;
# tests/cluster/node_helm_test.sh runs helm install + helm test on a real node (fixture cluster_node).
set(_cluster_state ${CMAKE_BINARY_DIR}/tests/cluster/state)
foreach(check dry-run lifecycle)
  string(REPLACE "-" "_" name "chart_cluster_${check}")
  add_test(NAME ${name} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cluster_test.sh ${check} ${_cluster_state})
  set_tests_properties(${name} PROPERTIES LABELS "chart;cluster" TIMEOUT 1200
    FIXTURES_REQUIRED "cluster_up;chart_helm" RESOURCE_LOCK tandem_cluster
    ENVIRONMENT "TANDEM_SOURCE_DIR=${CMAKE_SOURCE_DIR};TANDEM_BINARY_DIR=${CMAKE_BINARY_DIR}")
endforeach()
