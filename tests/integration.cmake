# Multi-process integration tests: real scuttled processes on loopback (DESIGN §11).
# Included from tests/CMakeLists.txt. Python 3 stdlib only; see tests/integration/harness.py.
#
#   ctest -L integration               every integration test, both transports
#   ctest -R 'integration\..*\.epoll'  one transport
#   SCUTTLE_SLOW=1 ctest -L slow       the 50-node measurement (skipped otherwise)
#   python3 tests/integration/measure.py --bin build/<preset>/tools/scuttled --nodes 50
#                                      the same by hand, with more options

# Emits valid (or deliberately broken) Syn/SynAck/Ack/Rumor/RumorAck/WelcomeRequest datagrams for hostile_test.py.
add_executable(scuttle_craft ${CMAKE_CURRENT_LIST_DIR}/integration/scuttle_craft.cc)
target_link_libraries(scuttle_craft PRIVATE scuttle_wire)

set(SCUTTLE_ITEST_DIR ${CMAKE_CURRENT_LIST_DIR}/integration)

if(TARGET scuttled)
  find_package(Python3 COMPONENTS Interpreter)
  if(Python3_Interpreter_FOUND)
    set(SCUTTLE_PY ${Python3_EXECUTABLE})
  else()
    set(SCUTTLE_PY python3)
  endif()

  # name -> script, extra args, timeout (seconds)
  function(scuttle_itest name script timeout)
    foreach(io uring epoll)
      set(t integration.${name}.${io})
      add_test(NAME ${t}
        COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/${script}
                --bin $<TARGET_FILE:scuttled> --io ${io} ${ARGN})
      set_tests_properties(${t} PROPERTIES
        TIMEOUT ${timeout}
        LABELS "integration"
        SKIP_RETURN_CODE 77)
    endforeach()
  endfunction()

  scuttle_itest(cli               cluster_test.py 60  --case cli)
  scuttle_itest(replication       cluster_test.py 90  --case replication)
  scuttle_itest(failure_detection cluster_test.py 90  --case failure_detection)
  scuttle_itest(leave             cluster_test.py 60  --case leave)
  scuttle_itest(restart           cluster_test.py 90  --case restart)
  scuttle_itest(late_join         cluster_test.py 120 --case late_join)
  scuttle_itest(bad_cluster       cluster_test.py 60  --case bad_cluster)
  scuttle_itest(hostile           hostile_test.py 120 --craft $<TARGET_FILE:scuttle_craft>)
  scuttle_itest(measure5          measure.py      90  --nodes 5 --rounds 5)
  # One node SIGSTOPped for 5 s: it declares nobody dead when it wakes (#16 item 3).
  scuttle_itest(sigstop           sigstop_test.py 60)
  # 5 nodes x --shards 2: both shards replicate, delete, expire; kill -9 seen on both
  # shards; garbage on every shard port; another shard count refused (#18).
  scuttle_itest(shards            shards_test.py  90)
  if(TARGET scuttlectl)
    scuttle_itest(scuttlectl      scuttlectl_test.py 90 --ctl $<TARGET_FILE:scuttlectl>)
  endif()
  # --io=xdp (docs/xdp.md): 3 nodes in namespaces s19-<pid>-*; root only (77 = skipped).
  foreach(xcase mixed all_drv all_skb)
    string(REGEX REPLACE "_.*" "" xc ${xcase})
    if(xcase MATCHES "_(drv|skb)$")
      set(xmode ${CMAKE_MATCH_1})
    else()
      set(xmode auto)
    endif()
    add_test(NAME integration.xdp.${xcase}
      COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/xdp_cluster_test.py --bin $<TARGET_FILE:scuttled>
              --case ${xc} --xdp_mode ${xmode})
    set_tests_properties(integration.xdp.${xcase} PROPERTIES TIMEOUT 90
      LABELS "integration;xdp" SKIP_RETURN_CODE 77)
  endforeach()
  # The seed-001 strategy flags: transport-independent, so one transport only.
  add_test(NAME integration.modes
    COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/modes_test.py --bin $<TARGET_FILE:scuttled> --io epoll)
  set_tests_properties(integration.modes PROPERTIES TIMEOUT 90 LABELS "integration"
    SKIP_RETURN_CODE 77)
  # zstd compression negotiated per peer on a mixed 3-node cluster: one transport only.
  add_test(NAME integration.compression
    COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/compression_test.py --bin $<TARGET_FILE:scuttled> --io epoll)
  set_tests_properties(integration.compression PROPERTIES TIMEOUT 90 LABELS "integration"
    SKIP_RETURN_CODE 77)
  # Interfaces proven: docs/openapi.yaml against the route table, promtool on /metrics,
  # the Grafana dashboard's metrics, deploy/ (yamllint, k8s fields, systemd-analyze,
  # Dockerfile). Exit 77 (skipped, with the reason) when a checker is not installed.
  foreach(case openapi promtool grafana deploy)
    add_test(NAME interfaces.${case}
      COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/interfaces_test.py
              --bin $<TARGET_FILE:scuttled> --io epoll --case ${case})
    set_tests_properties(interfaces.${case} PROPERTIES TIMEOUT 60 LABELS "integration"
      SKIP_RETURN_CODE 77)
  endforeach()
  # The /ui dashboard in headless Chromium on a 3-node cluster; the screenshot goes to
  # <build>/tests/ui_test_output/ui.png. Skipped (77, with the reason) without Chromium.
  add_test(NAME integration.ui
    COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/ui_test.py --bin $<TARGET_FILE:scuttled>
            --io epoll --out ${CMAKE_CURRENT_BINARY_DIR}/ui_test_output)
  set_tests_properties(integration.ui PROPERTIES TIMEOUT 120 LABELS "integration"
    SKIP_RETURN_CODE 77)
  # IPv6: a [::1] cluster and a dual-stack one, both transports; the default advertised
  # address of a [::]-bound node once. Skipped (77) without an IPv6 loopback.
  scuttle_itest(ipv6_loopback     ipv6_test.py 60 --case loopback)
  scuttle_itest(ipv6_dual_stack   ipv6_test.py 60 --case dual_stack)
  add_test(NAME integration.ipv6_default_advertise
    COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/ipv6_test.py --bin $<TARGET_FILE:scuttled>
            --io epoll --case default_advertise)
  set_tests_properties(integration.ipv6_default_advertise PROPERTIES TIMEOUT 60
    LABELS "integration" SKIP_RETURN_CODE 77)
  # --data_dir: restart with keys under a new generation, kill -9 at random points of the
  # rewrites, a corrupt file reported and not loaded, rejoin through the saved members.
  scuttle_itest(persist_restart   persist_test.py 60 --case restart)
  scuttle_itest(persist_kill9     persist_test.py 90 --case kill9 --rounds 8)
  foreach(case rejoin corrupt)
    add_test(NAME integration.persist_${case}
      COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/persist_test.py --bin $<TARGET_FILE:scuttled>
              --io epoll --case ${case})
    set_tests_properties(integration.persist_${case} PROPERTIES TIMEOUT 60
      LABELS "integration" SKIP_RETURN_CODE 77)
  endforeach()
  # Gossip security (DESIGN §8): transport-independent, so one transport only.
  if(TARGET scuttlectl)
    add_test(NAME integration.security
      COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/security_test.py --bin $<TARGET_FILE:scuttled>
              --ctl $<TARGET_FILE:scuttlectl> --craft $<TARGET_FILE:scuttle_craft> --io epoll)
    set_tests_properties(integration.security PROPERTIES TIMEOUT 120 LABELS "integration"
      SKIP_RETURN_CODE 77)
  endif()
  # 50 processes: minutes of CPU on a 2-core box, so opt-in (exit 77 = skipped).
  scuttle_itest(measure50         measure.py      600 --nodes 50 --rounds 3 --opt-in SCUTTLE_SLOW)
  foreach(io uring epoll)
    set_tests_properties(integration.measure50.${io} PROPERTIES LABELS "integration;slow"
      RUN_SERIAL TRUE)
  endforeach()

  # tools/demo --nodes 5 --once: skipped (77) until the script exists.
  add_test(NAME demo_once
    COMMAND ${SCUTTLE_PY} ${SCUTTLE_ITEST_DIR}/demo_once.py
            --demo ${CMAKE_SOURCE_DIR}/tools/demo --bin $<TARGET_FILE:scuttled>)
  set_tests_properties(demo_once PROPERTIES TIMEOUT 300 LABELS "integration"
    SKIP_RETURN_CODE 77)
endif()
