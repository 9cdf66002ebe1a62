# nodescope_fuzz(NAME <name> SRCS <files relative to the repo root> CORPUS <dir> [SECONDS <n>]
#                [DEFINES <macro>...])
#
# A libFuzzer target built with clang (the project itself builds with GCC, which has no
# -fsanitize=fuzzer), with AddressSanitizer and UBSan, straight from the listed sources: a parser
# under fuzzing must not depend on anything beyond the C++ standard library, common/status.h and
# header-only libraries (nlohmann-json; fmt with DEFINES FMT_HEADER_ONLY).
# The binary lands in <build>/fuzz/<name>. CTest (label `fuzz`) runs it for SECONDS (default 30)
# starting from CORPUS, the checked-in seeds, with at most 512 MiB of memory; a crash, a leak or a
# sanitizer report fails the test and leaves the input in <build>/fuzz/<name>-artifacts/.
find_program(NODESCOPE_FUZZ_CXX NAMES clang++-14 clang++ REQUIRED)

function(nodescope_fuzz)
  cmake_parse_arguments(ARG "" "NAME;CORPUS;SECONDS" "SRCS;DEFINES" ${ARGN})
  if(NOT ARG_SECONDS)
    set(ARG_SECONDS 30)
  endif()
  set(out_dir ${CMAKE_BINARY_DIR}/fuzz)
  set(bin ${out_dir}/${ARG_NAME})
  set(srcs)
  set(defines)
  foreach(d ${ARG_DEFINES})
    list(APPEND defines -D${d})
  endforeach()
  foreach(src ${ARG_SRCS})
    list(APPEND srcs ${PROJECT_SOURCE_DIR}/${src})
  endforeach()
  file(GLOB_RECURSE headers ${PROJECT_SOURCE_DIR}/sensor/protocols/*.h)
  add_custom_command(
    OUTPUT ${bin}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${NODESCOPE_FUZZ_CXX} -std=c++20 -O1 -g -fno-omit-frame-pointer
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
            ${defines} -I${PROJECT_SOURCE_DIR} ${srcs} -o ${bin}
    DEPENDS ${srcs} ${headers}
    COMMENT "fuzz target ${ARG_NAME}"
    VERBATIM)
  add_custom_target(fuzz_${ARG_NAME} ALL DEPENDS ${bin})
  add_test(NAME fuzz_${ARG_NAME}
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
            sh -c "mkdir -p '${out_dir}/${ARG_NAME}-artifacts' '${out_dir}/${ARG_NAME}-corpus' && \
exec '${bin}' -max_total_time=${ARG_SECONDS} -rss_limit_mb=512 -timeout=10 \
-artifact_prefix='${out_dir}/${ARG_NAME}-artifacts/' \
'${out_dir}/${ARG_NAME}-corpus' '${PROJECT_SOURCE_DIR}/${ARG_CORPUS}'")
  set_tests_properties(fuzz_${ARG_NAME} PROPERTIES LABELS fuzz TIMEOUT ${ARG_SECONDS}0)
endfunction()
