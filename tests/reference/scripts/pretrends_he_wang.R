# Export the He & Wang (2017) event study shipped with Roth's pretrends R package
# (github.com/jonathandroth/pretrends, data/HeAndWangResults.rda) to JSON text.
# Run: git show HEAD:data/HeAndWangResults.rda > hw.rda; Rscript pretrends_he_wang.R hw.rda > he_wang_inputs.txt
args <- commandArgs(trailingOnly = TRUE)
load(args[1])
f <- function(x) paste(sprintf("%.17g", x), collapse = ", ")
cat('{"beta": [', f(HeAndWangResults$beta), '],\n')
cat(' "tVec": [', f(HeAndWangResults$tVec), '],\n')
cat(' "sigma": [', paste(apply(HeAndWangResults$sigma, 1, function(r) paste0("[", f(r), "]")), collapse = ", "), ']}\n')
