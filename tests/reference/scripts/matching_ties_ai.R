# References for issue 19 (ties, Abadie-Imbens SEs, cobalt balance definitions).
# Run from the repository root after tests/reference/scripts/matchit_lalonde.R's setup:
#   bash tests/reference/scripts/build_matchit_451_fixed.sh <MatchIt git checkout> /tmp/Rlib-matchit
#   apt-get install -y r-cran-matching          # Sekhon's Matching 4.10-8 (Debian bookworm)
#   MATCHIT_LIB=/tmp/Rlib-matchit Rscript tests/reference/scripts/matching_ties_ai.R
# Writes tests/reference/matching_ties_ai.json with three blocks:
#  * "ties": MatchIt 4.5.1(+2 upstream fixes) match matrices on a large sample with many exact ties
#    (lalonde's 185 treated + its 429 controls replicated 37 times = 15,873 comparison units, all
#    rows of a control's replicas identical), in the original row order and in a relabelled order
#    (row k of the relabelled data is original row (k * 7919) %% n + 1, a bijection since 7919 is
#    prime and does not divide n = 16058). Logit NN, NN with replacement (ratio 1 and 2),
#    Mahalanobis (without, and with replacement ratio 2).
#  * "ai": Matching::Match(Y = re78, Tr = treat, X, estimand = "ATT", ties = TRUE, replace = TRUE)
#    on lalonde: Abadie-Imbens (2006) SEs, with and without the AI (2011) bias adjustment, on the
#    inverse-variance metric (Weight = 1) and on the fitted logit propensity score.
#  * "balance": cobalt bal.tab's ATT definitions written out in base R (cobalt is not in Debian):
#    binary covariates raw mean difference, continuous ones standardised by the unweighted
#    treated SD; variance ratio (continuous only) with cobalt's weighted variance
#    sum w (x - m)^2 * sum w / ((sum w)^2 - sum w^2); KS = max |F1 - F0| of the weighted eCDFs;
#    eCDF mean as MatchIt's summary (mean of |F1 - F0| over the distinct values), before and
#    after MatchIt's default 1:1 logit NN on lalonde.
if (nzchar(Sys.getenv("MATCHIT_LIB"))) .libPaths(c(Sys.getenv("MATCHIT_LIB"), .libPaths()))
suppressPackageStartupMessages({library(MatchIt); library(Matching); library(jsonlite)})
if (packageVersion("MatchIt") < "4.5.1.9001") stop("build the fixed MatchIt (build_matchit_451_fixed.sh)")
data("lalonde", package = "MatchIt")
f <- treat ~ age + educ + race + married + nodegree + re74 + re75

## ---- ties ---------------------------------------------------------------------------------------
ctrl <- lalonde[lalonde$treat == 0, ]
big <- rbind(lalonde, do.call(rbind, rep(list(ctrl), 36)))
rownames(big) <- NULL
n <- nrow(big)
perm <- ((0:(n - 1)) * 7919) %% n + 1
stopifnot(length(unique(perm)) == n)
att_w <- function(dd, w) unname(coef(lm(re78 ~ treat, data = dd[w > 0, ], weights = w[w > 0]))["treat"])
ties_case <- function(dd, ...) {
  m <- matchit(f, data = dd, method = "nearest", ...)
  mm <- m$match.matrix
  idx <- matrix(match(mm, rownames(dd)) - 1L, nrow = nrow(mm))   # 0-based rows of dd
  idx[is.na(idx)] <- -1L
  list(match_matrix = lapply(seq_len(nrow(idx)), function(i) idx[i, ]), att = att_w(dd, m$weights))
}
specs <- list(
  nearest_logit = list(),
  nearest_replace = list(replace = TRUE),
  nearest_replace_ratio2 = list(replace = TRUE, ratio = 2),
  nearest_mahalanobis = list(distance = "mahalanobis"),
  nearest_mahalanobis_replace_ratio2 = list(distance = "mahalanobis", replace = TRUE, ratio = 2)
)
ties <- list()
for (nm in names(specs)) {
  for (ord in c("original", "relabelled")) {
    dd <- if (ord == "original") big else big[perm, ]
    rownames(dd) <- NULL
    ties[[paste0(nm, "__", ord)]] <- c(list(name = nm, order = ord, args = specs[[nm]]),
                                        do.call(ties_case, c(list(dd = dd), specs[[nm]])))
    cat(nm, ord, "ATT", ties[[paste0(nm, "__", ord)]]$att, "\n")
  }
}

## ---- Abadie-Imbens via Matching::Match ------------------------------------------------------------
X <- model.matrix(~ age + educ + race + married + nodegree + re74 + re75, data = lalonde)[, -1]
ps <- fitted(glm(f, data = lalonde, family = binomial()))
lin <- predict(glm(f, data = lalonde, family = binomial()))
ai <- list()
ai_case <- function(name, Xm, M, bias, vc, Z = Xm) {
  r <- Match(Y = lalonde$re78, Tr = lalonde$treat, X = Xm, Z = Z, estimand = "ATT", M = M, BiasAdjust = bias,
             Var.calc = vc, Weight = 1, ties = TRUE, replace = TRUE, distance.tolerance = 1e-10, tolerance = 1e-10)
  ai[[name]] <<- list(name = name, M = M, bias_adjust = bias, var_calc = vc, est = unname(r$est[1, 1]), se = r$se,
                      se_standard = r$se.standard, n_match_rows = length(r$index.control))
  cat(name, r$est, r$se, "\n")
}
ai_case("ivar_m1_homo", X, 1, FALSE, 0)
ai_case("ivar_m1_vc2", X, 1, FALSE, 2)
ai_case("ivar_m2_vc2", X, 2, FALSE, 2)
ai_case("ivar_m1_bias_vc2", X, 1, TRUE, 2)
ai_case("ivar_m4_bias_vc4", X, 4, TRUE, 4)
ai_case("ps_m1_vc2", matrix(ps), 1, FALSE, 2)
ai_case("ps_m2_bias_vc2", matrix(ps), 2, TRUE, 2, Z = X)

## ---- balance (cobalt definitions) ----------------------------------------------------------------
m <- matchit(f, data = lalonde, method = "nearest")
w_after <- unname(m$weights)
B <- cbind(X[, c("age", "educ")], race_black = as.numeric(lalonde$race == "black"),
           race_hispan = as.numeric(lalonde$race == "hispan"), race_white = as.numeric(lalonde$race == "white"),
           X[, c("married", "nodegree", "re74", "re75")])
tr <- lalonde$treat == 1
wvar <- function(x, w) { m <- sum(w * x) / sum(w); sum(w * (x - m)^2) * sum(w) / (sum(w)^2 - sum(w^2)) }
ecdf_stats <- function(x, w, tr) {
  u <- sort(unique(x))
  F1 <- sapply(u, function(v) sum(w[tr & x <= v]) / sum(w[tr]))
  F0 <- sapply(u, function(v) sum(w[!tr & x <= v]) / sum(w[!tr]))
  c(ks = max(abs(F1 - F0)), ecdf_mean = mean(abs(F1 - F0)))
}
bal <- list()
for (sample in c("before", "after")) {
  w <- if (sample == "before") rep(1, nrow(lalonde)) else w_after
  for (v in colnames(B)) {
    x <- B[, v]; k <- w > 0
    binary <- all(x %in% c(0, 1))
    m1 <- sum((w * x)[tr & k]) / sum(w[tr & k]); m0 <- sum((w * x)[!tr & k]) / sum(w[!tr & k])
    sd1 <- sd(x[tr])
    e <- if (binary) c(ks = abs(m1 - m0), ecdf_mean = abs(m1 - m0)) else ecdf_stats(x[k], w[k], tr[k])
    bal[[length(bal) + 1]] <- list(covariate = v, sample = sample, binary = binary,
                                   diff = if (binary) m1 - m0 else (m1 - m0) / sd1,
                                   var_ratio = if (binary) NA else wvar(x[tr & k], w[tr & k]) / wvar(x[!tr & k], w[!tr & k]),
                                   ks = unname(e["ks"]), ecdf_mean = unname(e["ecdf_mean"]),
                                   mean_treated = m1, mean_control = m0)
  }
}

out <- list(source = paste("tests/reference/scripts/matching_ties_ai.R; MatchIt", as.character(packageVersion("MatchIt")),
                            "(4.5.1 + the two upstream nearest-neighbour fixes); Matching", as.character(packageVersion("Matching"))),
            versions = list(R = R.version.string, MatchIt = as.character(packageVersion("MatchIt")),
                            Matching = as.character(packageVersion("Matching"))),
            formula = deparse(f), big_n = n, big_construction = "rbind(lalonde, 36 more copies of lalonde[treat == 0, ]); relabelled row k = original row (k*7919 %% n) + 1 (0-based k)",
            ties = ties, ai = ai, ai_X_columns = colnames(X), balance = bal)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null", na = "null"), "tests/reference/matching_ties_ai.json")
cat("wrote tests/reference/matching_ties_ai.json\n")
