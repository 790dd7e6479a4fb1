# Reference values for models/cluster_map, computed in R (base R only).
#
#  * EconGeo (Balland; github.com/PABalland/EconGeo, commit 420c3c5): the package's own
#    R source of location.quotient(), Hachman(), Krugman.index() and Herfindahl() is
#    sourced from a checkout (ECONGEO_DIR) and run on the documentation matrix of
#    ?location.quotient, and on a matrix whose location quotients are all exactly 1.
#  * REAT 3.0.3 (Wieland): locq() and ellison.a() re-typed below from the package source
#    (rdrr.io/cran/REAT/src/R/ellison.a.R; locq = (e_ij/e_j)/(e_i/e)), run on the
#    documented examples (?locq: locq(1714, 79006, 879213, 15593224) = 0.3847623;
#    ?ellison.a, Farhauer/Kroell 2014: 0.05990628) and on a hand-computed case.
#  * quantile(type = 7), the percentile definition of the strong-cluster rule.
#
# Run: ECONGEO_DIR=/path/to/EconGeo Rscript tests/reference/scripts/cluster_map_reference.R \
#        > tests/reference/cluster_map/r_reference.json
d <- Sys.getenv("ECONGEO_DIR")
for (f in c("location.quotient.r", "Hachman.r", "Krugman.index.r", "Herfindahl.r")) source(file.path(d, "R", f))

herf <- function(x) sum((x / sum(x))^2)  # REAT herf(): sum of squared shares
locq <- function(e_ij, e_j, e_i, e) (e_ij / e_j) / (e_i / e)
ellison.a <- function(e_ik, e_j, regions) {  # REAT 3.0.3 ellison.a, printing removed
  J <- length(levels(as.factor(regions)))
  j_names <- levels(factor(regions, levels = unique(regions)))
  e_ij <- vector()
  for (i in 1:J) e_ij[i] <- sum(e_ik[regions == j_names[i]])
  e_i <- sum(e_ik); e <- sum(e_j)
  s_ij <- e_ij / e_i; s_j <- e_j / e
  G_i <- sum((s_ij - s_j)^2)
  H_i <- herf(e_ik)
  sum_s_j2 <- sum(s_j^2)
  gamma_i <- (G_i - (1 - sum_s_j2) * H_i) / ((1 - sum_s_j2) * (1 - H_i))
  c(gamma = gamma_i, G = G_i, H = H_i)
}

mat <- matrix(c(100, 0, 0, 0, 0,
                0, 15, 5, 70, 10,
                0, 20, 10, 20, 50,
                0, 25, 30, 5, 40,
                0, 40, 55, 5, 0), ncol = 5, byrow = TRUE)
ones <- matrix(c(2, 2, 1, 1), ncol = 2, byrow = TRUE)

num <- function(x) paste0("[", paste(sprintf("%.15g", x), collapse = ", "), "]")
mrows <- function(m) paste0("[", paste(apply(m, 1, num), collapse = ", "), "]")

fk <- ellison.a(c(200, 650, 12000, 100, 50, 16000, 13000, 1500, 1500, 25000), c(500000, 400000, 100000),
                c("Wien", "Wien", "Wien", "Wien", "Wien", "Linz", "Linz", "Linz", "Linz", "Graz"))
# region C has no firm of the sector: as REAT's ellison.a2 does, a zero-size firm is added
# there so that e_ij covers every region of e_j (ellison.a alone would recycle s_ij)
hand <- ellison.a(c(10, 5, 5, 0), c(50, 30, 20), c("A", "A", "B", "C"))
q <- c(0.5, 1.2, 0.8, 2.0, 1.0, 3.1, 0.9)

cat("{\n")
cat(sprintf('  "source": "R %s.%s, base R; EconGeo R source at commit 420c3c5 (sourced); REAT 3.0.3 locq/ellison.a re-typed; script tests/reference/scripts/cluster_map_reference.R",\n', R.version$major, R.version$minor))
cat(sprintf('  "econgeo_matrix": %s,\n', mrows(mat)))
cat(sprintf('  "econgeo_location_quotient": %s,\n', mrows(location.quotient(mat))))
cat(sprintf('  "econgeo_location_quotient_binary": %s,\n', mrows(location.quotient(mat, binary = TRUE))))
cat(sprintf('  "econgeo_hachman": %s,\n', num(Hachman(mat))))
cat(sprintf('  "econgeo_krugman": %s,\n', num(Krugman.index(mat))))
cat(sprintf('  "econgeo_herfindahl": %s,\n', num(Herfindahl(mat))))
cat(sprintf('  "ones_matrix": %s,\n', mrows(ones)))
cat(sprintf('  "ones_location_quotient": %s,\n', mrows(location.quotient(ones))))
cat(sprintf('  "ones_location_quotient_binary": %s,\n', mrows(location.quotient(ones, binary = TRUE))))
cat(sprintf('  "reat_locq_documented": %.15g,\n', locq(1714, 79006, 879213, 15593224)))
cat(sprintf('  "reat_ellison_fk2014": {"gamma": %.15g, "G": %.15g, "H": %.15g},\n', fk[["gamma"]], fk[["G"]], fk[["H"]]))
cat(sprintf('  "reat_ellison_hand": {"gamma": %.15g, "G": %.15g, "H": %.15g},\n', hand[["gamma"]], hand[["G"]], hand[["H"]]))
cat(sprintf('  "quantile_x": %s,\n', num(q)))
cat(sprintf('  "quantile_type7": {"0.25": %.15g, "0.75": %.15g, "0.9": %.15g}\n', quantile(q, 0.25, type = 7), quantile(q, 0.75, type = 7), quantile(q, 0.9, type = 7)))
cat("}\n")
