/* The node's sandbox ("pause") container: holds the pod's namespaces and
 * does nothing else. Exits on SIGINT or SIGTERM, reaps any child it is
 * handed. Built static by tests/k8s/node/images.sh (no registry here to
 * pull the upstream pause image from). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }

int main(void) {
  signal(SIGINT, stop);
  signal(SIGTERM, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
