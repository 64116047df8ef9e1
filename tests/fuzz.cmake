# tests/fuzz.cmake: fuzz targets for packet decode and apply (DESIGN §8, §11).
#
#   decode_apply_fuzz   libFuzzer binary; only with clang and SCUTTLE_FUZZ=ON (the `fuzz`
#                       preset: clang++, ASan+UBSan). Run it on a copy of the corpus:
#                         cp -r tests/fuzz/corpus /tmp/c && build/fuzz/tests/decode_apply_fuzz /tmp/c
#   fuzz_corpus_replay  the same entry point with a plain main(): replays tests/fuzz/corpus/
#                       plus deterministic mutations of every file; any compiler; in ctest.
#   make_corpus         regenerates the seed corpus and the known crashers:
#                         make_corpus tests/fuzz/corpus tests/fuzz/crashers
#                       (crashers/ holds inputs that still break the target; they move into
#                       corpus/ once fixed, and are not replayed by ctest until then).
set(SCUTTLE_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)

add_library(scuttle_fuzz_fixture STATIC ${SCUTTLE_FUZZ_DIR}/fuzz_fixture.cc)
target_link_libraries(scuttle_fuzz_fixture PUBLIC scuttle_engine)

add_executable(fuzz_corpus_replay
  ${SCUTTLE_FUZZ_DIR}/decode_apply_fuzz.cc
  ${SCUTTLE_FUZZ_DIR}/replay_main.cc)
target_link_libraries(fuzz_corpus_replay PRIVATE scuttle_fuzz_fixture)
# Mutations per seed file. Under ASan one execution costs ~2.5 ms (mostly mmap/munmap of
# each NodeState's first 256 KB arena chunk), so sanitizer builds replay fewer.
if(SCUTTLE_SANITIZE)
  set(SCUTTLE_FUZZ_REPLAY_MUTATIONS 300 CACHE STRING "fuzz_corpus_replay mutations per seed")
else()
  set(SCUTTLE_FUZZ_REPLAY_MUTATIONS 2000 CACHE STRING "fuzz_corpus_replay mutations per seed")
endif()
add_test(NAME fuzz_corpus_replay
  COMMAND fuzz_corpus_replay --mutations=${SCUTTLE_FUZZ_REPLAY_MUTATIONS} ${SCUTTLE_FUZZ_DIR}/corpus
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(fuzz_corpus_replay PROPERTIES TIMEOUT 600 LABELS fuzz)

add_executable(make_corpus ${SCUTTLE_FUZZ_DIR}/make_corpus.cc)
target_link_libraries(make_corpus PRIVATE scuttle_fuzz_fixture)

if(SCUTTLE_FUZZ AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  # Coverage feedback needs the code under test instrumented, not just the harness; this
  # build directory exists for fuzzing, so wire/ and engine/ get it too, at -O1 (libFuzzer's
  # advice: unoptimized absl/flatbuffers code runs ~5x fewer executions per second).
  foreach(lib scuttle_wire scuttle_engine scuttle_fuzz_fixture)
    target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link -O1)
  endforeach()
  add_executable(decode_apply_fuzz ${SCUTTLE_FUZZ_DIR}/decode_apply_fuzz.cc)
  target_compile_options(decode_apply_fuzz PRIVATE -fsanitize=fuzzer -O1)
  target_link_options(decode_apply_fuzz PRIVATE -fsanitize=fuzzer)
  target_link_libraries(decode_apply_fuzz PRIVATE scuttle_fuzz_fixture)
  # The instrumented libraries call the sancov hooks; outside libFuzzer the sanitizer
  # runtime's weak no-op hooks satisfy them, or libFuzzer's runtime without its main().
  if(NOT SCUTTLE_SANITIZE)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-resource-dir
                    OUTPUT_VARIABLE SCUTTLE_CLANG_RESOURCE_DIR OUTPUT_STRIP_TRAILING_WHITESPACE)
    target_link_libraries(fuzz_corpus_replay PRIVATE
      ${SCUTTLE_CLANG_RESOURCE_DIR}/lib/linux/libclang_rt.fuzzer_no_main-${CMAKE_SYSTEM_PROCESSOR}.a)
  endif()
elseif(SCUTTLE_FUZZ)
  message(WARNING "SCUTTLE_FUZZ needs clang; building only fuzz_corpus_replay")
endif()
