# The real tandem-operator (replaces the placeholder once the controller exists).
tandem_binary(tandem-operator SOURCES tandem_operator_main.cc
  DEPS tandem_controller tandem_kube tandem_common)
