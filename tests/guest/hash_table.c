/* A chained hash table and linked lists: pointer chasing over heap objects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { char key[16]; long value; struct node *next; };
#define BUCKETS 1024
static struct node *table[BUCKETS];
static unsigned hash(const char *s) { unsigned h = 2166136261u; while (*s) h = (h ^ (unsigned char)*s++) * 16777619u; return h; }
static struct node *find(const char *k) {
    for (struct node *n = table[hash(k) % BUCKETS]; n; n = n->next) if (!strcmp(n->key, k)) return n;
    return NULL;
}
static void put(const char *k, long v) {
    struct node *n = find(k);
    if (n) { n->value += v; return; }
    n = malloc(sizeof *n);
    strncpy(n->key, k, sizeof n->key - 1); n->key[15] = 0; n->value = v;
    unsigned b = hash(k) % BUCKETS; n->next = table[b]; table[b] = n;
}
int main(void) {
    char k[16];
    for (int i = 0; i < 100000; i++) { snprintf(k, sizeof k, "k%d", (i * 7919) % 20011); put(k, i); }
    long total = 0; int count = 0, longest = 0;
    for (int b = 0; b < BUCKETS; b++) {
        int len = 0;
        for (struct node *n = table[b]; n; n = n->next) total += n->value, count++, len++;
        if (len > longest) longest = len;
    }
    struct node *n = find("k1234");
    printf("%d keys, total %ld, longest chain %d, k1234=%ld\n", count, total, longest, n ? n->value : -1);
    for (int b = 0; b < BUCKETS; b++) while (table[b]) { struct node *x = table[b]; table[b] = x->next; free(x); }
    return 0;
}
