/* Loads a BPF object, attaches every program and holds them until SIGTERM
 * (bench/hook_floor/run.sh). Prints "attached" once all are. */
#include <bpf/libbpf.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct bpf_object *obj;
  struct bpf_program *prog;

  if (argc != 2) {
    fprintf(stderr, "usage: %s OBJECT\n", argv[0]);
    return 2;
  }
  obj = bpf_object__open_file(argv[1], NULL);
  if (!obj || bpf_object__load(obj)) {
    fprintf(stderr, "hook_floor: cannot load %s\n", argv[1]);
    return 1;
  }
  bpf_object__for_each_program(prog, obj) {
    if (!bpf_program__attach(prog)) {
      fprintf(stderr, "hook_floor: cannot attach %s\n", bpf_program__name(prog));
      return 1;
    }
  }
  fprintf(stderr, "attached\n");
  fflush(stderr);
  pause();
  return 0;
}
