# tandem_add_test(NAME name SOURCES a.cc b.cc [LIBS libs...] [LABELS unit|integration|gpu]
#                 [TIMEOUT seconds] [RESOURCE_LOCK name])
# Declares one GoogleTest executable run by ctest. Tests labelled `gpu` report "Skipped" in ctest's
# summary when no GPU is present (the test itself calls GTEST_SKIP), never silently pass.
function(tandem_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;RESOURCE_LOCK" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_options(${T_NAME} PRIVATE ${TANDEM_WARNINGS})
  set_target_properties(${T_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}"
    ENVIRONMENT "TANDEM_SOURCE_DIR=${CMAKE_SOURCE_DIR};TANDEM_BINARY_DIR=${CMAKE_BINARY_DIR};TANDEM_BIN_DIR=${CMAKE_BINARY_DIR}/bin")
  if(T_TIMEOUT)
    set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT})
  endif()
  if(T_RESOURCE_LOCK)
    set_tests_properties(${T_NAME} PROPERTIES RESOURCE_LOCK ${T_RESOURCE_LOCK})
  endif()
  if("gpu" IN_LIST T_LABELS)
    set_tests_properties(${T_NAME} PROPERTIES SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
  endif()
endfunction()

# tandem_library(name SOURCES ... [DEPS ...]): a static library of our own code, warnings on.
function(tandem_library NAME)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS;PUBLIC_DEPS" ${ARGN})
  add_library(${NAME} STATIC ${L_SOURCES})
  target_include_directories(${NAME} PUBLIC ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/generated)
  target_link_libraries(${NAME} PUBLIC ${L_PUBLIC_DEPS} PRIVATE ${L_DEPS})
  target_compile_options(${NAME} PRIVATE ${TANDEM_WARNINGS})
endfunction()

# tandem_binary(name SOURCES ... DEPS ...): a shipped executable in build/bin/.
function(tandem_binary NAME)
  cmake_parse_arguments(B "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${NAME} ${B_SOURCES})
  target_link_libraries(${NAME} PRIVATE ${B_DEPS})
  target_compile_options(${NAME} PRIVATE ${TANDEM_WARNINGS})
endfunction()

# tandem_proto_library(name PROTOS a.proto b.proto [GRPC]): generates C++ (and gRPC stubs with
# GRPC) into the build tree (build/generated/proto/...) and builds them as a static library.
# Include generated headers as "proto/<name>.pb.h".
function(tandem_proto_library NAME)
  cmake_parse_arguments(P "GRPC" "" "PROTOS" ${ARGN})
  set(out_dir ${CMAKE_BINARY_DIR}/generated/proto)
  file(MAKE_DIRECTORY ${out_dir})
  set(srcs)
  foreach(proto ${P_PROTOS})
    get_filename_component(abs ${proto} ABSOLUTE)
    get_filename_component(base ${proto} NAME_WE)
    set(gen ${out_dir}/${base}.pb.cc ${out_dir}/${base}.pb.h)
    set(args --cpp_out=${out_dir})
    if(P_GRPC)
      list(APPEND gen ${out_dir}/${base}.grpc.pb.cc ${out_dir}/${base}.grpc.pb.h)
      list(APPEND args --grpc_out=${out_dir} --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN})
    endif()
    add_custom_command(OUTPUT ${gen}
      COMMAND ${PROTOC_EXECUTABLE} ${args} -I ${CMAKE_CURRENT_SOURCE_DIR} ${abs}
      DEPENDS ${abs} VERBATIM COMMENT "protoc ${proto}")
    list(APPEND srcs ${gen})
  endforeach()
  add_library(${NAME} STATIC ${srcs})
  target_include_directories(${NAME} SYSTEM PUBLIC ${CMAKE_BINARY_DIR}/generated)
  target_link_libraries(${NAME} PUBLIC protobuf::libprotobuf)
  if(P_GRPC)
    target_link_libraries(${NAME} PUBLIC gRPC::grpc++)
  endif()
endfunction()
