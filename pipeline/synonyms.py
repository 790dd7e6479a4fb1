"""Column names registers and statistical offices use, by pipeline name and language
(English, German, French, Spanish, Italian), for ``cluster-impact init``.

Names are compared after :func:`normalise`: lower case, umlauts spelled out (ä -> ae,
ö -> oe, ü -> ue, ß -> ss), other accents dropped (é -> e, ñ -> n), every run of
characters other than letters and digits turned into one ``_``. So ``Beschäftigte``,
``beschaeftigte`` and ``BESCHAEFTIGTE`` are one name, as are ``année``/``annee`` and
``año``/``ano``.

Sources: the variable names of the German AFiD/URS and IAB Betriebspanel, French
FARE/ESANE and SIRENE (INSEE), Spanish SABI/Central de Balances and INE, Italian AIDA and
ISTAT Frame-SBS registers, Orbis/Amadeus (English), and the NACE/NUTS classification names.
"""

from __future__ import annotations

import re
import unicodedata

LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian"}

_ID_EN = ["firm_id", "firmid", "firm", "firm_code", "company_id", "company", "enterprise_id", "enterprise", "ent_id", "unit_id", "id", "idnr", "bvd_id", "bvd_id_number"]
_ID = {
    "en": _ID_EN,
    "de": ["betrieb_id", "betriebs_id", "betriebsnummer", "betrieb", "betriebsnr", "unternehmen_id", "unternehmens_id", "unternehmen", "unternehmensnummer",
           "firmen_id", "firma", "urs_id", "bnr"],
    "fr": ["siren", "siret", "entreprise_id", "id_entreprise", "entreprise", "identifiant", "ident", "code_entreprise"],
    "es": ["nif", "cif", "empresa_id", "id_empresa", "empresa", "codigo_empresa"],
    "it": ["partita_iva", "p_iva", "piva", "codice_fiscale", "impresa_id", "id_impresa", "impresa", "codice_impresa"],
}

PANEL: dict[str, dict[str, list[str]]] = {
    "firm_id": _ID,
    "year": {
        "en": ["year", "yr", "fiscal_year", "financial_year", "period", "time"],
        "de": ["jahr", "berichtsjahr", "geschaeftsjahr", "wirtschaftsjahr", "erhebungsjahr"],
        "fr": ["annee", "exercice", "annee_exercice", "millesime"],
        "es": ["ano", "ejercicio", "anio"],
        "it": ["anno", "anno_riferimento", "esercizio"],
    },
    "sector": {
        "en": ["sector", "sector_code", "industry", "industry_code", "nace", "nace2", "nace_2", "nace_rev2", "nace_code", "isic", "naics", "sic"],
        "de": ["wz", "wz08", "wz2008", "wz_2008", "branche", "wirtschaftszweig", "wirtschaftsabschnitt"],
        "fr": ["secteur", "secteur_activite", "naf", "code_naf", "ape", "code_ape", "naf2"],
        "es": ["cnae", "cnae2009", "actividad", "sector_actividad"],
        "it": ["settore", "ateco", "codice_ateco", "ateco2007", "attivita"],
    },
    "region": {
        "en": ["region", "region_code", "nuts", "nuts1", "nuts2", "nuts3", "nuts_2", "nuts_3", "county", "district", "state"],
        "de": ["kreis", "landkreis", "kreis_id", "bundesland", "land", "gemeinde", "regierungsbezirk", "raumordnungsregion", "arbeitsmarktregion"],
        "fr": ["departement", "dept", "dep", "code_departement", "commune", "code_commune"],
        "es": ["provincia", "comunidad", "comunidad_autonoma", "ccaa", "municipio"],
        "it": ["provincia", "regione", "comune", "sll"],
    },
    "founding_year": {
        "en": ["founding_year", "founded", "foundation_year", "year_founded", "established", "birth_year", "incorporation_year", "year_of_incorporation"],
        "de": ["gruendungsjahr", "gruendung", "gruendungsdatum"],
        "fr": ["annee_creation", "date_creation", "creation", "annee_de_creation"],
        "es": ["ano_constitucion", "fecha_constitucion", "constitucion", "ano_fundacion"],
        "it": ["anno_costituzione", "anno_fondazione", "data_costituzione"],
    },
    "employment": {
        "en": ["employment", "employees", "emp", "n_employees", "num_employees", "number_of_employees", "headcount", "staff", "fte", "workers", "jobs"],
        "de": ["beschaeftigte", "anzahl_beschaeftigte", "beschaeftigung", "mitarbeiter", "anzahl_mitarbeiter", "arbeitnehmer", "svb", "taetige_personen"],
        "fr": ["effectif", "effectifs", "salaries", "nb_salaries", "nombre_salaries", "emplois", "effectif_salarie"],
        "es": ["empleados", "empleo", "trabajadores", "plantilla", "num_empleados", "numero_empleados"],
        "it": ["addetti", "dipendenti", "occupati", "num_dipendenti", "numero_addetti"],
    },
    "turnover": {
        "en": ["turnover", "sales", "revenue", "revenues", "operating_revenue", "net_sales"],
        "de": ["umsatz", "umsatzerloese", "erloese", "gesamtumsatz"],
        "fr": ["chiffre_affaires", "chiffre_d_affaires", "ca", "ca_ht", "ventes"],
        "es": ["ventas", "facturacion", "cifra_negocios", "importe_neto_cifra_negocios", "ingresos", "cifra_de_negocios"],
        "it": ["fatturato", "ricavi", "vendite", "ricavi_vendite"],
    },
    "value_added": {
        "en": ["value_added", "valueadded", "va", "gva", "gross_value_added"],
        "de": ["wertschoepfung", "bruttowertschoepfung", "bws", "nettowertschoepfung"],
        "fr": ["valeur_ajoutee", "va_ht", "valeur_ajoutee_ht", "vaht"],
        "es": ["valor_anadido", "valor_agregado", "vab", "valor_anadido_bruto"],
        "it": ["valore_aggiunto", "valore_aggiunto_lordo"],
    },
    "wage_bill": {
        "en": ["wage_bill", "wages", "payroll", "personnel_costs", "personnel_expenses", "labour_costs", "labor_costs", "staff_costs", "compensation"],
        "de": ["lohnsumme", "loehne", "bruttoloehne", "personalkosten", "personalaufwand", "entgelte", "bruttoentgelte"],
        "fr": ["masse_salariale", "salaires", "charges_personnel", "frais_personnel", "salaires_traitements"],
        "es": ["gastos_personal", "salarios", "masa_salarial", "gastos_de_personal", "sueldos"],
        "it": ["costo_personale", "costo_del_personale", "salari", "retribuzioni", "monte_salari"],
    },
    "capital": {
        "en": ["capital", "capital_stock", "fixed_assets", "tangible_assets", "tangible_fixed_assets", "net_fixed_assets", "k"],
        "de": ["sachanlagen", "anlagevermoegen", "sachanlagevermoegen", "kapitalstock", "kapital"],
        "fr": ["immobilisations", "immobilisations_corporelles", "actifs_immobilises", "immo_corporelles"],
        "es": ["inmovilizado", "inmovilizado_material", "activo_fijo", "activos_fijos"],
        "it": ["immobilizzazioni", "immobilizzazioni_materiali", "capitale", "capitale_fisso"],
    },
    "intermediates": {
        "en": ["intermediates", "intermediate_inputs", "materials", "material_costs", "inputs", "purchases", "intermediate_consumption"],
        "de": ["vorleistungen", "materialaufwand", "materialkosten", "materialverbrauch", "vorleistungsbezug"],
        "fr": ["consommations_intermediaires", "consommation_intermediaire", "achats", "achats_consommes", "ci"],
        "es": ["consumos_intermedios", "consumo_intermedio", "aprovisionamientos", "compras"],
        "it": ["consumi_intermedi", "costi_materie_prime", "acquisti", "costi_intermedi"],
    },
    "exports": {
        "en": ["exports", "export", "export_sales", "foreign_sales", "export_turnover"],
        "de": ["exporte", "export_umsatz", "exportumsatz", "auslandsumsatz", "ausfuhr", "ausfuhren"],
        "fr": ["exportations", "ca_export", "ventes_export", "chiffre_affaires_export"],
        "es": ["exportaciones", "ventas_exterior", "ventas_exteriores"],
        "it": ["esportazioni", "export_it", "fatturato_estero", "vendite_estero"],
    },
    "patents": {
        "en": ["patents", "patent", "patent_applications", "patent_count", "n_patents", "num_patents", "patent_apps"],
        "de": ["patente", "patentanmeldungen", "patentanmeldung", "anzahl_patente"],
        "fr": ["brevets", "brevet", "demandes_brevet", "demandes_de_brevet", "nb_brevets"],
        "es": ["patentes", "solicitudes_patente", "solicitudes_de_patente", "num_patentes"],
        "it": ["brevetti", "domande_brevetto", "domande_di_brevetto", "num_brevetti"],
    },
    "rd": {
        "en": ["rd", "r_d", "rnd", "rd_expenditure", "rd_expenses", "rd_spending", "research", "research_and_development"],
        "de": ["fue", "f_e", "fue_aufwand", "fue_ausgaben", "forschungsausgaben", "forschung"],
        "fr": ["r_et_d", "depenses_rd", "rd_depenses", "recherche", "depenses_recherche"],
        "es": ["i_d", "gasto_i_d", "gastos_i_d", "gasto_id", "investigacion"],
        "it": ["r_s", "spese_rs", "spese_r_s", "ricerca", "ricerca_sviluppo"],
    },
    "group_id": {
        "en": ["group_id", "group", "enterprise_group", "group_code", "guo_id"],
        "de": ["konzern", "konzern_id", "unternehmensgruppe", "gruppe", "gruppe_id"],
        "fr": ["groupe", "groupe_id", "id_groupe", "tete_groupe", "siren_tete_groupe"],
        "es": ["grupo", "grupo_id", "id_grupo", "grupo_empresarial"],
        "it": ["gruppo", "gruppo_id", "id_gruppo"],
    },
    "x_coord": {
        "en": ["x_coord", "x", "lon", "lng", "longitude", "easting", "coord_x", "utm_x"],
        "de": ["rechtswert", "laengengrad", "laenge"],
        "fr": ["coordonnee_x", "coord_x_lambert"],
        "es": ["longitud", "coordenada_x"],
        "it": ["longitudine", "coordinata_x"],
    },
    "y_coord": {
        "en": ["y_coord", "y", "lat", "latitude", "northing", "coord_y", "utm_y"],
        "de": ["hochwert", "breitengrad", "breite"],
        "fr": ["coordonnee_y", "coord_y_lambert"],
        "es": ["latitud", "coordenada_y"],
        "it": ["latitudine", "coordinata_y"],
    },
}

MEMBERSHIP: dict[str, dict[str, list[str]]] = {
    "firm_id": _ID,
    "cluster_id": {
        "en": ["cluster_id", "cluster", "cluster_name", "cluster_code", "initiative", "cluster_initiative", "programme", "program", "network", "network_id"],
        "de": ["netzwerk", "netzwerk_id", "clusterinitiative", "cluster_initiative", "kompetenznetz", "kompetenznetzwerk", "spitzencluster"],
        "fr": ["pole", "pole_id", "pole_competitivite", "pole_de_competitivite", "grappe", "reseau"],
        "es": ["agrupacion", "aei", "agrupacion_empresarial", "red", "conglomerado"],
        "it": ["polo", "polo_id", "distretto", "distretto_id", "polo_innovazione", "rete", "cluster_tecnologico"],
    },
    "join_year": {
        "en": ["join_year", "join", "joined", "join_date", "entry_year", "entry", "entry_date", "start_year", "start", "start_date", "member_since", "since",
               "first_year", "first_treat", "cohort"],
        "de": ["beitritt", "beitrittsjahr", "beitrittsdatum", "eintritt", "eintrittsjahr", "eintrittsdatum", "beginn", "mitglied_seit", "aufnahme"],
        "fr": ["adhesion", "annee_adhesion", "date_adhesion", "entree", "date_entree", "annee_entree", "debut", "date_debut"],
        "es": ["alta", "fecha_alta", "ano_alta", "ingreso", "fecha_ingreso", "ano_ingreso", "inicio", "fecha_inicio"],
        "it": ["adesione", "anno_adesione", "data_adesione", "ingresso", "data_ingresso", "anno_ingresso", "inizio", "data_inizio"],
    },
    "leave_year": {
        "en": ["leave_year", "leave", "left", "leave_date", "exit_year", "exit", "exit_date", "end_year", "end", "end_date", "member_until", "until", "last_year"],
        "de": ["austritt", "austrittsjahr", "austrittsdatum", "ende", "enddatum", "mitglied_bis", "ausscheiden"],
        "fr": ["sortie", "annee_sortie", "date_sortie", "fin", "date_fin", "depart"],
        "es": ["baja", "fecha_baja", "ano_baja", "salida", "fecha_salida", "fin", "fecha_fin"],
        "it": ["uscita", "anno_uscita", "data_uscita", "cessazione", "data_cessazione", "fine", "data_fine"],
    },
}

_UMLAUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "ae", "Ö": "oe", "Ü": "ue", "ß": "ss"})


def normalise(name: str) -> str:
    """``'Beschäftigte (FTE)'`` -> ``'beschaeftigte_fte'``; ``'Année'`` -> ``'annee'``."""
    s = str(name).translate(_UMLAUT)
    s = unicodedata.normalize("NFKD", s)
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")


def match_score(column: str, synonym: str) -> int:
    """How well a file column name matches one synonym (both normalised): 100 the same
    name; 60 minus 5 per extra word when the synonym's words appear in order in the
    column's (``anzahl_beschaeftigte`` for ``beschaeftigte``); 30 when the column starts
    with a synonym of 5 or more letters (``umsatzerloese_eur`` for ``umsatz``); else 0."""
    c, s = normalise(column), normalise(synonym)
    if not c or not s:
        return 0
    if c == s:
        return 100
    ct, st = c.split("_"), s.split("_")
    for i in range(len(ct) - len(st) + 1):
        if ct[i:i + len(st)] == st:
            return max(1, 60 - 5 * (len(ct) - len(st)))
    if len(s) >= 5 and c.startswith(s):
        return 30
    return 0


def best_match(column: str, table: dict[str, list[str]]) -> tuple[int, str, str]:
    """(score, synonym, language) of the best synonym in one field's table."""
    best = (0, "", "")
    for lang, names in table.items():
        for syn in names:
            sc = match_score(column, syn)
            if sc > best[0]:
                best = (sc, syn, lang)
    return best
