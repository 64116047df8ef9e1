# netlab: scuttled processes in one network namespace each, faults on real (veth) links,
# and a Jepsen-style history checker (docs/netlab.md). Included from tests/CMakeLists.txt.
#
#   ctest -L netlab                          the checker's unit test + the CI scenario subset
#   tests/netlab/run --bin build/release/tools/scuttled --soak    every scenario, longer
#
# The scenarios need root and network namespaces: without them the test exits 77 and
# ctest reports it skipped, with the reason in its output.
set(SCUTTLE_NETLAB_DIR ${CMAKE_CURRENT_LIST_DIR}/netlab)

if(TARGET scuttled)
  if(NOT SCUTTLE_PY)
    find_package(Python3 COMPONENTS Interpreter)
    set(SCUTTLE_PY ${Python3_EXECUTABLE})
  endif()
  add_test(NAME netlab.checker
    COMMAND ${SCUTTLE_PY} ${SCUTTLE_NETLAB_DIR}/checker_test.py)
  set_tests_properties(netlab.checker PROPERTIES TIMEOUT 30 LABELS "netlab")
  # The CI subset (clean, loss5, delay20, partition, sigstop, kill_restart; seed 15):
  # about a minute on an idle 2-core machine; the 300 s timeout is the CI budget.
  add_test(NAME netlab.ci
    COMMAND ${SCUTTLE_PY} ${SCUTTLE_NETLAB_DIR}/run --bin $<TARGET_FILE:scuttled> --io epoll)
  set_tests_properties(netlab.ci PROPERTIES TIMEOUT 300 LABELS "netlab"
    SKIP_RETURN_CODE 77)
endif()

# --profile=local|lan|wan (the defaults the netlab figures led to; docs/netlab.md).
if(TARGET scuttled)
  add_test(NAME integration.profile
    COMMAND ${SCUTTLE_PY} ${CMAKE_CURRENT_LIST_DIR}/integration/profile_test.py
            --bin $<TARGET_FILE:scuttled> --io epoll)
  set_tests_properties(integration.profile PROPERTIES TIMEOUT 60 LABELS "integration"
    SKIP_RETURN_CODE 77)
endif()
