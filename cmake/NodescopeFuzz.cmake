# nodescope_fuzz(NAME <name> SRCS <files relative to the repo root> CORPUS <dir> [SECONDS <n>]
#                [DEFINES <macro>...] [INCLUDES <dir>...] [LIBS <target or -lname>...])
#
# A libFuzzer target built with clang (the project itself builds with GCC, which has no
# -fsanitize=fuzzer), with AddressSanitizer and UBSan, straight from the listed sources: only
# they are instrumented, so everything the fuzzed code does lives in SRCS. What it merely calls
# into is linked as it is: LIBS names system libraries (-lyaml-cpp, -lprotobuf) or static
# libraries of this project (ns_proto: the generated protobuf code, built by GCC; same C++ ABI),
# INCLUDES adds include directories (${CMAKE_BINARY_DIR}/gen for the generated headers).
# Header-only libraries need nothing (nlohmann-json; fmt with DEFINES FMT_HEADER_ONLY).
# The binary lands in <build>/fuzz/<name>. CTest (label `fuzz`) runs it for SECONDS (default 30)
# starting from CORPUS, the checked-in seeds, with at most 512 MiB of memory; a crash, a leak or a
# sanitizer report fails the test and leaves the input in <build>/fuzz/<name>-artifacts/.
find_program(NODESCOPE_FUZZ_CXX NAMES clang++-14 clang++ REQUIRED)

function(nodescope_fuzz)
  cmake_parse_arguments(ARG "" "NAME;CORPUS;SECONDS" "SRCS;DEFINES;INCLUDES;LIBS" ${ARGN})
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
  set(header_globs ${PROJECT_SOURCE_DIR}/common/*.h)
  foreach(src ${ARG_SRCS})
    list(APPEND srcs ${PROJECT_SOURCE_DIR}/${src})
    get_filename_component(src_dir ${PROJECT_SOURCE_DIR}/${src} DIRECTORY)
    list(APPEND header_globs ${src_dir}/*.h)
  endforeach()
  file(GLOB_RECURSE headers ${PROJECT_SOURCE_DIR}/sensor/protocols/*.h)
  file(GLOB more_headers ${header_globs})
  list(APPEND headers ${more_headers})
  set(includes)
  foreach(dir ${ARG_INCLUDES})
    list(APPEND includes -I${dir})
  endforeach()
  # Project libraries by file (and rebuilt first), system ones as given.
  set(libs)
  set(lib_deps)
  foreach(lib ${ARG_LIBS})
    if(TARGET ${lib})
      list(APPEND libs $<TARGET_FILE:${lib}>)
      list(APPEND lib_deps ${lib})
    else()
      list(APPEND libs ${lib})
    endif()
  endforeach()
  add_custom_command(
    OUTPUT ${bin}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${NODESCOPE_FUZZ_CXX} -std=c++20 -O1 -g -fno-omit-frame-pointer
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
            ${defines} -I${PROJECT_SOURCE_DIR} ${includes} ${srcs} ${libs} -o ${bin}
    DEPENDS ${srcs} ${headers} ${lib_deps}
    COMMENT "fuzz target ${ARG_NAME}"
    VERBATIM)
  add_custom_target(fuzz_${ARG_NAME} ALL DEPENDS ${bin})
  # A 64 MiB quarantine (of freed memory, for use-after-free reports) instead of 256: the
  # targets that parse YAML and build Prometheus registries per input otherwise sit at ~450 MiB
  # of the 512 MiB limit.
  add_test(NAME fuzz_${ARG_NAME}
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=64
            sh -c "mkdir -p '${out_dir}/${ARG_NAME}-artifacts' '${out_dir}/${ARG_NAME}-corpus' && \
exec '${bin}' -max_total_time=${ARG_SECONDS} -rss_limit_mb=512 -timeout=10 \
-artifact_prefix='${out_dir}/${ARG_NAME}-artifacts/' \
'${out_dir}/${ARG_NAME}-corpus' '${PROJECT_SOURCE_DIR}/${ARG_CORPUS}'")
  set_tests_properties(fuzz_${ARG_NAME} PROPERTIES LABELS fuzz TIMEOUT ${ARG_SECONDS}0)
endfunction()
